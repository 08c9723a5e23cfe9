// A proxy in a process of its own, in front of an upstream app in another (its child), so that a
// test can measure the proxy's memory alone while it moves large bodies.
// Prints {"port": N, "upstreamPid": N} once listening; SIGTERM stops both.
// The app (role "upstream"):
//   POST /upload           -> {"bytes": n, "sha256": "..."} of the body it received
//   GET  /download?bytes=N -> N bytes of dataChunks(N), written with back-pressure

import http from 'node:http';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProxy } from '../../src/proxy/server';
import { silentLogger } from '../../src/log/logger';
import type { SessionSource } from '../../src/core/leases';
import { dataChunks } from './proxy-data';

function runUpstream(socketPath: string): void {
  const app = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://app');
    if (req.method === 'POST' && url.pathname === '/upload') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
      });
      return;
    }
    if (url.pathname === '/download') {
      const total = Number(url.searchParams.get('bytes'));
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      void (async () => {
        for (const chunk of dataChunks(total)) {
          if (res.destroyed) return;
          if (!res.write(chunk)) await once(res, 'drain');
        }
        res.end();
      })().catch(() => res.destroy());
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  app.listen(socketPath, () => process.stdout.write('ready\n'));
  process.once('SIGTERM', () => process.exit(0));
  // Never outlive the harness.
  process.stdin.resume();
  process.stdin.once('end', () => process.exit(0));
}

async function runProxy(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hf-proxy-harness-'));
  const socketPath = join(dir, 'app.sock');
  const upstream = spawn(process.execPath, [__filename, 'upstream', socketPath], { stdio: ['pipe', 'pipe', 'inherit'] });
  upstream.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    upstream.stdout!.once('data', () => resolve());
    upstream.once('exit', (code) => reject(new Error(`upstream exited with ${code}`)));
  });

  const sessions: SessionSource = {
    acquire: () => Promise.resolve({ pid: upstream.pid!, generation: 1, target: { kind: 'unix', socketPath }, close: () => undefined }),
  };
  const proxy = createProxy({ sessions, environment: 'production', logger: silentLogger() });
  const { port } = await proxy.listen(0, '127.0.0.1');
  process.stdout.write(`${JSON.stringify({ port, upstreamPid: upstream.pid })}\n`);

  process.once('SIGTERM', () => {
    void (async () => {
      await proxy.close(1_000);
      if (upstream.exitCode === null && upstream.signalCode === null) {
        const exited = once(upstream, 'exit');
        upstream.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    })();
  });
}

if (process.argv[2] === 'upstream') runUpstream(process.argv[3]!);
else {
  runProxy().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
