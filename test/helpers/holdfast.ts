// Runs the real `holdfast start` in a child process on port 0, with its own instance registry,
// and reads its JSON log. Every test that uses it ends with stop() and checks no app pid is left.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import http from 'node:http';
import { CLI } from './paths';

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Calls onLine for each line holdfast logs as JSON on the stream; a line that is not JSON comes as level "raw". */
export function readLogLines(stream: NodeJS.ReadableStream, onLine: (line: LogLine, raw: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const raw = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        line = { level: 'raw', msg: raw };
      }
      onLine(line, raw);
    }
  });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number | null) ?? 1 : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

export class Holdfast {
  readonly lines: LogLine[] = [];
  /** Every stdout line as written (lines holds them parsed). */
  readonly rawLines: string[] = [];
  stderr = '';
  port = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every app pid this instance ever reported ready. */
  readonly appPids = new Set<number>();
  private constructor(
    readonly child: ChildProcess,
    readonly registryDir: string,
    readonly name: string,
    readonly env: NodeJS.ProcessEnv,
  ) {
    readLogLines(child.stdout!, (line, raw) => {
      this.rawLines.push(raw);
      this.lines.push(line);
      if (typeof line.port === 'number' && line.event === 'serving') this.port = line.port;
      if (typeof line.app_pid === 'number' && line.event === 'process_ready') this.appPids.add(line.app_pid);
    });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  }

  /** Starts holdfast and waits until it listens and its first processes are up (or failed). */
  static async start(appDir: string, args: string[] = [], opts: { name?: string; registryDir?: string; env?: NodeJS.ProcessEnv; waitReady?: boolean } = {}): Promise<Holdfast> {
    const registryDir = opts.registryDir ?? mkdtempSync(join(tmpdir(), 'hf-reg-'));
    const name = opts.name ?? `t${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    // Self-check mode: the group verifies its invariants after every change (STYLE.md).
    const env = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registryDir, HOLDFAST_VERIFY_INVARIANTS: '1', ...opts.env };
    const child = spawn(process.execPath, [CLI, 'start', appDir, '--port', '0', '--address', '127.0.0.1', '--name', name, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const hf = new Holdfast(child, registryDir, name, env);
    await waitFor('holdfast to listen', () => hf.port > 0 || hf.child.exitCode !== null, 30_000);
    if (hf.port === 0) throw new Error(`holdfast did not start: ${hf.stderr}`);
    if (opts.waitReady !== false) {
      await waitFor('the first app process', () => hf.appPids.size > 0 || hf.lines.some((l) => l.event === 'spawn_error'), 30_000);
    }
    return hf;
  }

  url(path = '/'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  cli(args: string[]): Promise<CliResult> {
    return runCli([...args, '--name', this.name], this.env);
  }

  async status(): Promise<StatusJson> {
    const r = await this.cli(['status', '--json']);
    if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusJson;
  }

  livePids(): number[] {
    return [...this.appPids].filter(pidAlive);
  }

  waitForLog(what: string, pred: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    return waitFor(what, () => this.lines.find(pred), timeoutMs);
  }

  /** SIGTERM, wait for exit, then assert-ready facts: exit code and whether app pids are gone. */
  async stop(): Promise<{ code: number | null; leftover: number[] }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    const { code } = await this.exited;
    clearTimeout(timer);
    const leftover = await waitFor('app processes to go', () => (this.livePids().length === 0 ? [] : false), 10_000).catch(() => this.livePids());
    rmSync(this.registryDir, { recursive: true, force: true });
    return { code, leftover };
  }
}

/** Stops holdfast and asserts the clean stop: exit code 0 and no app process left behind. */
export async function stopClean(hf: Holdfast): Promise<void> {
  const { code, leftover } = await hf.stop();
  assert.equal(code, 0);
  assert.deepEqual(leftover, [], 'no app process outlives holdfast');
}

export interface StatusJson {
  version: string;
  max_pool_size: number;
  process_count: number;
  groups: Array<{
    generation: number;
    restart: unknown;
    resisting_deployment_error: null | { error: { error_id: string; message: string; output_tail: string[] } };
    requests_in_queue: number;
    processes: Array<{ pid: number; generation: number; state: string; sessions: number; processed: number; connections: number; rss_bytes: number | null; release: string; in_probation: boolean }>;
  }>;
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export function get(url: string, headers: http.OutgoingHttpHeaders = {}, agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
  });
}
