// The load generator: wrk, installed with apt-get when missing; autocannon only as a fallback.
//
// Why wrk: this machine has 2 cores, shared by the load generator, the front and the app processes.
// wrk is C with one epoll thread and spends a small fraction of what autocannon (JavaScript on Node,
// an HTTP parser per response) spends per request, so with autocannon the load generator would take
// about as much CPU as the layer being measured, and every ratio would shrink towards 1.

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Resources } from './processes';

export interface LoadOptions {
  url: string;
  connections: number;
  seconds: number;
  /** Per-request timeout; wrk's default of 2 s is too short for 8 MiB bodies on 32 connections. */
  timeoutSeconds?: number;
  /** POST this many bytes per request instead of a GET. */
  postBytes?: number;
}

export interface LoadResult {
  requests: number;
  requestsPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  bytesPerSec: number;
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** non-2xx responses plus every socket error: what "0 failed requests" is about. */
  failed: number;
}

export interface LoadGenerator {
  readonly name: 'wrk' | 'autocannon';
  readonly version: string;
  /** Why this one, for the output and the result file. */
  readonly why: string;
  run(options: LoadOptions): Promise<LoadResult>;
}

export function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/sbin', '/usr/local/bin'])) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** apt-get install -y PACKAGE (update first when the lists are stale); false when it cannot. */
export function aptInstall(pkg: string, log: (line: string) => void): boolean {
  if (!which('apt-get')) return false;
  const prefix = isRoot() ? [] : which('sudo') ? ['sudo', '-n'] : undefined;
  if (!prefix) return false;
  const apt = (args: string[]) => {
    const [cmd, ...rest] = [...prefix, 'apt-get', ...args];
    const r = spawnSync(cmd!, rest, { stdio: 'ignore', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    return r.status === 0;
  };
  log(`installing ${pkg} with apt-get ...`);
  if (apt(['install', '-y', '--no-install-recommends', pkg])) return true;
  return apt(['update']) && apt(['install', '-y', '--no-install-recommends', pkg]);
}

export function chooseLoadGenerator(resources: Resources, scratchDir: string, log: (line: string) => void): LoadGenerator {
  const forced = process.env.BENCH_LOADGEN;
  if (forced !== 'autocannon') {
    let wrk = which('wrk');
    let why = 'wrk: C, one epoll thread, little CPU per request next to the layers measured on the same 2 cores';
    if (!wrk && aptInstall('wrk', log)) {
      wrk = which('wrk');
      why += ' (installed just now with apt-get)';
    }
    if (wrk) return new Wrk(wrk, resources, scratchDir, why);
    log('WARNING: wrk is missing and apt-get could not install it: falling back to autocannon, which runs in Node');
    log('         on the same cores as what it measures, so the ratios (hello above all) come out lower than with wrk.');
    return new Autocannon(resources, scratchDir, 'autocannon (fallback: wrk missing and apt-get could not install it; steals CPU from the layers measured)');
  }
  return new Autocannon(resources, scratchDir, 'autocannon (BENCH_LOADGEN=autocannon; steals CPU from the layers measured)');
}

class Wrk implements LoadGenerator {
  readonly name = 'wrk';
  readonly version: string;
  constructor(
    private readonly path: string,
    private readonly resources: Resources,
    private readonly scratchDir: string,
    readonly why: string,
  ) {
    const r = spawnSync(path, ['-v'], { encoding: 'utf8', timeout: 10_000 });
    this.version = /wrk\s+(\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'unknown';
  }

  async run(o: LoadOptions): Promise<LoadResult> {
    const args = ['-t1', `-c${o.connections}`, `-d${o.seconds}s`, '--latency'];
    if (o.timeoutSeconds) args.push('--timeout', `${o.timeoutSeconds}s`);
    if (o.postBytes) {
      const script = join(this.scratchDir, `post-${o.postBytes}.lua`);
      writeFileSync(script, `wrk.method = "POST"\nwrk.body = string.rep("x", ${o.postBytes})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`);
      args.push('-s', script);
    }
    args.push(o.url);
    const out = await runBounded(this.resources, this.path, args, (o.seconds + (o.timeoutSeconds ?? 2) + 15) * 1000);
    return parseWrk(out);
  }
}

class Autocannon implements LoadGenerator {
  readonly name = 'autocannon';
  readonly version: string;
  private readonly script: string;
  constructor(
    private readonly resources: Resources,
    private readonly scratchDir: string,
    readonly why: string,
  ) {
    this.script = require.resolve('autocannon/autocannon.js');
    this.version = (require('autocannon/package.json') as { version: string }).version;
  }

  async run(o: LoadOptions): Promise<LoadResult> {
    // In a child process, not in the bench's own event loop: the bench samples RSS meanwhile.
    const args = [this.script, '-c', String(o.connections), '-d', String(o.seconds), '-j'];
    if (o.timeoutSeconds) args.push('-t', String(o.timeoutSeconds));
    if (o.postBytes) {
      const file = join(this.scratchDir, `post-${o.postBytes}.bin`);
      writeFileSync(file, Buffer.alloc(o.postBytes, 'x'));
      args.push('-m', 'POST', '-i', file, '-H', 'content-type=application/octet-stream');
    }
    args.push(o.url);
    const out = await runBounded(this.resources, process.execPath, args, (o.seconds + (o.timeoutSeconds ?? 10) + 20) * 1000);
    const j = JSON.parse(out) as {
      duration: number;
      errors: number;
      timeouts: number;
      non2xx: number;
      latency: { p50: number; p99: number };
      requests: { total: number };
      throughput: { total: number };
    };
    const failedSockets = Math.max(0, j.errors - j.timeouts);
    return {
      requests: j.requests.total,
      requestsPerSec: j.requests.total / j.duration,
      latencyP50Ms: j.latency.p50,
      latencyP99Ms: j.latency.p99,
      bytesPerSec: j.throughput.total / j.duration,
      non2xx: j.non2xx,
      socketErrors: { connect: 0, read: failedSockets, write: 0, timeout: j.timeouts },
      failed: j.non2xx + j.errors,
    };
  }
}

/** Runs a load generator to completion, killed (and failing) if it outlives its bound. */
function runBounded(resources: Resources, command: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // In a session of its own (setsid): with the kernel's autogroup scheduling (on by default) each
    // session shares the CPU as one, so a front whose processes sat in the load generator's session
    // (the bench's) would be scheduled unlike one whose processes have sessions of their own, as
    // holdfast's app processes do. Real visitors are on other machines. BENCH_LOADGEN_SESSION=shared
    // runs it in the bench's session instead.
    const child = resources.spawn(command, args, { detached: process.env.BENCH_LOADGEN_SESSION !== 'shared' });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      void resources.stop(child, 'SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} ran past its bound of ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim() || stdout.trim()}`));
    });
  });
}

// ---- parsing wrk's text output ----

const TIME_UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function timeMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`wrk: cannot read the duration "${text}"`);
  return Number(m[1]) * TIME_UNITS_MS[m[2]!]!;
}

/** Reads `wrk --latency` output; throws when a figure the bench needs is missing. */
export function parseWrk(out: string): LoadResult {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk output has no ${what}:\n${out}`);
    return m;
  };
  const rps = Number(need(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')[1]);
  const requests = Number(need(/^\s*(\d+) requests in /m, 'request count')[1]);
  const p50 = timeMs(need(/^\s+50(?:\.0+)?%\s+(\S+)/m, '50% latency (was --latency given?)')[1]!);
  const p99 = timeMs(need(/^\s+99(?:\.0+)?%\s+(\S+)/m, '99% latency')[1]!);
  const transfer = /^Transfer\/sec:\s+([\d.]+)([KMGT]?B)/m.exec(out);
  const bytesPerSec = transfer ? Number(transfer[1]) * SIZE_UNITS[transfer[2]!]! : 0;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const s = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = {
    connect: Number(s?.[1] ?? 0),
    read: Number(s?.[2] ?? 0),
    write: Number(s?.[3] ?? 0),
    timeout: Number(s?.[4] ?? 0),
  };
  const failed = non2xx + socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout;
  return { requests, requestsPerSec: rps, latencyP50Ms: p50, latencyP99Ms: p99, bytesPerSec, non2xx, socketErrors, failed };
}

