// Which client should the proxy use to talk to app processes? Measures a minimal forwarding proxy
// built on each candidate, in front of the same Node hello server on a Unix socket, under
// autocannon load on 127.0.0.1. Runs are interleaved (a, b, c, a, b, c, ...) so that the noise of a
// shared machine falls on every candidate alike.
//
//   node dist/bench/upstream-client.js [rounds=3] [seconds=4] [connections=32] [variants=all, comma-separated]
//
// Roles: the main process runs autocannon; one child is the upstream; one child per run is the proxy.

import http from 'node:http';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { createProxy } from '../src/proxy/server';
import { silentLogger } from '../src/log/logger';
import { TargetPool } from '../src/proxy/upstream-client';

// 'holdfast' is the real proxy (src/proxy/server.ts) built on the winner, to show what the rest of
// its work (headers, request id, sessions) costs on top of the bare client.
// 'own-client' is holdfast's own HTTP/1.1 client (src/proxy/upstream-client.ts) with nothing else.
type Variant = 'http-agent' | 'undici-stream' | 'undici-dispatch' | 'own-client' | 'holdfast';
const ALL_VARIANTS: readonly Variant[] = ['http-agent', 'undici-stream', 'undici-dispatch', 'own-client', 'holdfast'];

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p99: number; average: number };
  errors: number;
  non2xx: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'expect']);

function requestHeaders(req: http.IncomingMessage): string[] {
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

function responseHeaders(raw: readonly (Buffer | string)[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString();
    if (!HOP.has(name.toLowerCase())) out.push(name, raw[i + 1]!.toString());
  }
  return out;
}

function hasBody(req: http.IncomingMessage): boolean {
  return req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
}

function runUpstream(socketPath: string): void {
  const body = Buffer.from('hello world\n');
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(socketPath, () => process.send!({ ready: true }));
}

function makeHandler(variant: Variant, socketPath: string): http.RequestListener {
  if (variant === 'http-agent') {
    const agent = new http.Agent({ keepAlive: true });
    return (req, res) => {
      const upstream = http.request(
        { socketPath, agent, method: req.method, path: req.url, headers: requestHeaders(req) },
        (up) => {
          res.writeHead(up.statusCode ?? 502, responseHeaders(up.rawHeaders));
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      if (hasBody(req)) req.pipe(upstream);
      else upstream.end();
    };
  }
  if (variant === 'own-client') {
    const own = new TargetPool({ kind: 'unix', socketPath }, 60_000);
    return (req, res) => {
      own.dispatch(
        { method: req.method ?? 'GET', path: req.url!, headers: requestHeaders(req), body: hasBody(req) ? req : null, reset: false },
        {
          onConnect() {},
          onRequestSent() {},
          onHeaders(statusCode, raw, resume) {
            if (statusCode < 200) return true;
            res.writeHead(statusCode, responseHeaders(raw));
            res.on('drain', resume);
            return true;
          },
          onData: (chunk) => res.write(chunk),
          onComplete: () => res.end(),
          onError: () => res.destroy(),
        },
      );
    };
  }
  const pool = new Pool('http://localhost', { socketPath, headersTimeout: 0, bodyTimeout: 0 });
  if (variant === 'undici-stream') {
    return (req, res) => {
      pool
        .stream(
          {
            method: req.method as Dispatcher.HttpMethod,
            path: req.url!,
            headers: requestHeaders(req),
            body: hasBody(req) ? req : null,
          },
          ({ statusCode, headers }) => {
            const flat: string[] = [];
            for (const [k, v] of Object.entries(headers)) {
              if (HOP.has(k) || v === undefined) continue;
              for (const one of Array.isArray(v) ? v : [v]) flat.push(k, one);
            }
            res.writeHead(statusCode, flat);
            return res;
          },
        )
        .catch(() => res.destroy());
    };
  }
  return (req, res) => {
    pool.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: req.url!,
        headers: requestHeaders(req),
        body: hasBody(req) ? req : null,
      },
      {
        onConnect() {},
        onHeaders(statusCode, raw, resume) {
          if (statusCode < 200) return true;
          res.writeHead(statusCode, responseHeaders(raw));
          res.on('drain', resume);
          return true;
        },
        onData(chunk) {
          return res.write(chunk);
        },
        onComplete() {
          res.end();
        },
        onError() {
          res.destroy();
        },
      },
    );
  };
}

function runProxy(variant: Variant, socketPath: string): void {
  // CPU time is the steadier measure on a shared machine: the parent asks for it around a run.
  process.on('message', () => {
    const { user, system } = process.cpuUsage();
    process.send!({ cpuMicros: user + system });
  });
  if (variant === 'holdfast') {
    const target = { kind: 'unix' as const, socketPath };
    const proxy = createProxy({
      sessions: { acquire: () => Promise.resolve({ pid: 1, generation: 1, target, close: () => undefined }) },
      environment: 'production',
      logger: silentLogger(),
    });
    void proxy.listen(0, '127.0.0.1').then(({ port }) => process.send!({ port }));
    return;
  }
  const server = http.createServer(makeHandler(variant, socketPath));
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address && typeof address === 'object') process.send!({ port: address.port });
  });
}

async function cpuMicros(child: ChildProcess): Promise<number> {
  const reply = once(child, 'message') as Promise<[{ cpuMicros: number }]>;
  child.send('cpu');
  return (await reply)[0].cpuMicros;
}

async function startChild(args: string[]): Promise<{ child: ChildProcess; message: { port?: number } }> {
  const child = fork(__filename, args, { stdio: 'inherit' });
  const [message] = (await once(child, 'message')) as [{ port?: number }];
  return { child, message };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3);
  const seconds = Number(process.argv[3] ?? 4);
  const connections = Number(process.argv[4] ?? 32);
  const VARIANTS = process.argv[5] ? (process.argv[5].split(',') as Variant[]) : ALL_VARIANTS;
  const autocannon = require('autocannon') as Autocannon;
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-bench-'));
  const socketPath = join(dir, 'upstream.sock');
  const upstream = await startChild(['upstream', socketPath]);
  const results = new Map<string, { rps: number[]; p99: number[]; cpuPerRequest: number[] }>();
  try {
    const direct = await autocannon({ url: 'http://localhost/', socketPath, connections, duration: seconds });
    console.log(`direct (no proxy, autocannon -> unix socket): ${Math.round(direct.requests.average)} req/s, p99 ${direct.latency.p99} ms`);
    for (let round = 1; round <= rounds; round++) {
      // Rotate the order each round so that no candidate always runs first or last.
      const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!);
      for (const variant of order) {
        const proxy = await startChild(['proxy', variant, socketPath]);
        try {
          const url = `http://127.0.0.1:${proxy.message.port}/`;
          await autocannon({ url, connections, duration: 1 }); // warm-up: JIT and keep-alive sockets
          const cpuBefore = await cpuMicros(proxy.child);
          const r = await autocannon({ url, connections, duration: seconds });
          const cpuPerRequest = (await cpuMicros(proxy.child)) - cpuBefore;
          const entry = results.get(variant) ?? { rps: [], p99: [], cpuPerRequest: [] };
          entry.rps.push(r.requests.average);
          entry.p99.push(r.latency.p99);
          entry.cpuPerRequest.push(cpuPerRequest / Math.max(1, r.requests.total));
          results.set(variant, entry);
          console.log(
            `round ${round} ${variant.padEnd(16)} ${Math.round(r.requests.average)} req/s  p99 ${r.latency.p99} ms  ` +
              `proxy CPU ${entry.cpuPerRequest.at(-1)!.toFixed(1)} us/req  errors ${r.errors} non2xx ${r.non2xx}`,
          );
        } finally {
          await stopChild(proxy.child);
        }
      }
    }
  } finally {
    await stopChild(upstream.child);
    rmSync(dir, { recursive: true, force: true });
  }
  const median = (xs: number[]): number => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  // Runs of one round are close in time and share the machine's mood; their ratio to the first
  // candidate's run of the same round is steadier than the raw numbers.
  const baseName = VARIANTS[0]!;
  const base = results.get(baseName)!.rps;
  console.log(`\nmedian of ${rounds} runs, ${seconds}s each, ${connections} connections:`);
  for (const variant of VARIANTS) {
    const { rps, p99, cpuPerRequest } = results.get(variant)!;
    const ratios = rps.map((r, i) => r / base[i]!);
    const geomean = Math.exp(ratios.reduce((sum, x) => sum + Math.log(x), 0) / ratios.length);
    console.log(
      `${variant.padEnd(16)} ${String(Math.round(median(rps))).padStart(6)} req/s  p99 ${median(p99)} ms  ` +
        `proxy CPU ${median(cpuPerRequest).toFixed(1)} us/req  ` +
        `x${geomean.toFixed(2)} of ${baseName} (geometric mean of per-round ratios)`,
    );
  }
}

const role = process.argv[2];
if (role === 'upstream') runUpstream(process.argv[3]!);
else if (role === 'proxy') runProxy(process.argv[3] as Variant, process.argv[4]!);
else {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
