// Everything the benchmark starts goes through here, so that it can all be stopped by pid and every
// temp dir removed — at the end, on an error, and on Ctrl-C — and so that every wait is bounded.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REPO_ROOT = join(__dirname, '..', '..', '..');
export const CLI = join(REPO_ROOT, 'bin', 'holdfast');
export const APPS_DIR = join(REPO_ROOT, 'bench', 'apps');
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves when the child has exited, or after timeoutMs (false then). */
export function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (!alive(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export class Resources {
  private readonly children = new Set<ChildProcess>();
  private readonly dirs = new Set<string>();

  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    // A missing binary is reported through 'error'; without a listener it would crash the bench.
    child.on('error', () => undefined);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.add(dir);
    return dir;
  }

  removeDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    this.dirs.delete(dir);
  }

  /** `signal`, then SIGKILL after graceMs; resolves once the process is gone. */
  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    if (!alive(child)) return;
    child.kill(signal);
    if (await exited(child, graceMs)) return;
    child.kill('SIGKILL');
    await exited(child, 5_000);
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => this.stop(c)));
    for (const dir of [...this.dirs]) this.removeDir(dir);
  }

  /** Last resort from process.on('exit'): synchronous, so SIGKILL and rm only. */
  releaseAllSync(): void {
    for (const child of this.children) if (alive(child)) child.kill('SIGKILL');
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** A BENCH_* setting: a positive whole number, or the fallback when unset or empty. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number, not "${raw}"`);
  return n;
}

/** The pids whose parent is `pid`, from /proc. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

export function httpGet(url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out`)));
  });
}

/** Polls url until it answers 200; throws after timeoutMs, or at once when `child` has exited. */
export async function waitForHttp(url: string, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (child && !alive(child)) throw new Error(`the process serving ${url} exited (code ${child.exitCode}, signal ${child.signalCode})`);
    try {
      const r = await httpGet(url, 2_000);
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (${last})`);
    await sleep(100);
  }
}

export interface Rss {
  rssBytes: number;
  /** The kernel's high-water mark of the RSS over the process's life. */
  hwmBytes: number;
}

export function readRss(pid: number): Rss | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** Samples a pid's RSS every intervalMs until stop(); reading /proc costs next to nothing. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): { peakBytes: number; samples: number } } {
  let peakBytes = 0;
  let samples = 0;
  const take = () => {
    const r = readRss(pid);
    if (r) {
      samples++;
      peakBytes = Math.max(peakBytes, r.rssBytes);
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peakBytes, samples };
    },
  };
}

/** Collects a child's stdout as lines (and keeps the last few for error messages). */
export function readLines(child: ChildProcess, onLine: (line: string) => void): { tail: string[] } {
  const tail: string[] = [];
  const feed = (stream: NodeJS.ReadableStream | null, isStdout: boolean) => {
    if (!stream) return;
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (isStdout) onLine(line);
      }
    });
  };
  feed(child.stdout, true);
  feed(child.stderr, false);
  return { tail };
}

export function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : 'n/a';
}

/**
 * Runs a benchmark's body with a Resources that is released whatever happens: normal end, error
 * (exit 2), Ctrl-C or SIGTERM (exit 130). The body's resolved number is the exit code.
 */
export function runMain(body: (resources: Resources) => Promise<number>): void {
  const resources = new Resources();
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${signal}: stopping everything the benchmark started ...`);
    void resources.releaseAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => resources.releaseAllSync());
  body(resources).then(
    async (code) => {
      await resources.releaseAll();
      process.exit(code);
    },
    async (err: unknown) => {
      if (stopping) return;
      const debug = process.env.BENCH_DEBUG !== undefined && err instanceof Error;
      console.error(`benchmark failed: ${err instanceof Error ? (debug ? (err.stack ?? err.message) : err.message) : String(err)}`);
      await resources.releaseAll();
      process.exit(2);
    },
  );
}
