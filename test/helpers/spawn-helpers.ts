// Shared by the spawn tests: temporary socket dirs, pid checks that treat zombies as gone,
// bounded HTTP requests to a ProcessHandle's target, and a spawner that cleans up after itself.

import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildSpawner, type ChildSpawnerOptions } from '../../src/spawn/child-spawner';
import { startWatchdog, type Watchdog } from '../../src/spawn/watchdog';
import type { ProcessHandle, UpstreamTarget } from '../../src/core/process-handle';
import type { SpawnRequest } from '../../src/core/spawner';
import { fixtureApp } from './paths';

/** A fresh 0700 dir with a short path, as the supervisor makes for sockets. */
export function makeSocketDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hf-spawn-'));
  chmodSync(dir, 0o700);
  return dir;
}

/**
 * True when pid no longer runs. A zombie counts as gone: it runs nothing, and processes
 * reparented to an init that does not reap them stay zombies for ever.
 */
export function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export async function waitUntil(condition: () => boolean, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return true;
}

/** Waits (bounded) until every pid is gone; returns the ones still running. */
export async function waitUntilGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  await waitUntil(() => pids.every(isGone), timeoutMs);
  return pids.filter((pid) => !isGone(pid));
}

/** Last resort so that a failing test leaves nothing running: SIGKILL to pids we started. */
export function killLeftovers(pids: readonly number[]): void {
  for (const pid of pids) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // gone, or not a group leader
      }
    }
  }
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** One GET to an app process, bounded by timeoutMs. */
export function get(target: UpstreamTarget, path = '/', timeoutMs = 5000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const where = target.kind === 'unix' ? { socketPath: target.socketPath } : { host: target.host, port: target.port };
    const req = request({ ...where, path, method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface OutputLine {
  line: string;
  pid: number;
  stream: 'stdout' | 'stderr';
}

/**
 * A ChildSpawner on a fresh socket dir and watchdog that remembers every pid it saw, so that
 * cleanup() can check nothing is left: no process, no socket file.
 */
export class SpawnerFixture {
  readonly socketDir = makeSocketDir();
  readonly watchdog: Watchdog = startWatchdog();
  readonly output: OutputLine[] = [];
  readonly pids = new Set<number>();
  readonly handles: ProcessHandle[] = [];
  private outputWaiters: (() => void)[] = [];

  spawner(options: Partial<ChildSpawnerOptions> & { app?: string } = {}): ChildSpawner {
    const { app = 'hello', ...rest } = options;
    return new ChildSpawner({
      appDir: fixtureApp(app),
      environment: 'production',
      envvars: {},
      startTimeoutMs: 20_000,
      socketDir: this.socketDir,
      watchdog: this.watchdog,
      onOutput: (line, meta) => {
        this.pids.add(meta.pid);
        this.output.push({ line, ...meta });
        for (const wake of this.outputWaiters.splice(0)) wake();
      },
      ...rest,
    });
  }

  async spawn(spawner: ChildSpawner, request: Partial<SpawnRequest> = {}): Promise<ProcessHandle> {
    const handle = await spawner.spawn({ generation: 1, signal: new AbortController().signal, ...request });
    this.pids.add(handle.pid);
    this.handles.push(handle);
    return handle;
  }

  /** Resolves with the first output line matching re (bounded). */
  async waitForOutput(re: RegExp, timeoutMs = 15_000): Promise<OutputLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.output.find((o) => re.test(o.line));
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no output line matched ${re} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.outputWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Terminates what is left, closes the watchdog; returns what was left behind (should be nothing). */
  async cleanup(): Promise<{ pids: number[]; sockets: string[] }> {
    await Promise.all(this.handles.map((h) => h.terminate(0)));
    const all = [...this.pids];
    if (this.watchdog.pid !== undefined) all.push(this.watchdog.pid);
    await this.watchdog.close();
    const pids = await waitUntilGone(all, 5000);
    killLeftovers(pids);
    const sockets = readdirSync(this.socketDir);
    rmSync(this.socketDir, { recursive: true, force: true });
    return { pids, sockets };
  }
}
