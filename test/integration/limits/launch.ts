// Starts the real `holdfast start` for the limit tests, optionally under a wrapper (prlimit) and
// with the log in a file; finds its port through its instance.json, as the CLI does.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive, readLogLines, runCli, waitFor, type CliResult, type LogLine } from '../../helpers/holdfast';
import { CLI } from '../../helpers/paths';

export interface Launched {
  child: ChildProcess;
  name: string;
  registryDir: string;
  env: NodeJS.ProcessEnv;
  port: number;
  /** Log lines on stdout (none when --log-file is given). */
  lines: LogLine[];
  stderr: () => string;
  exited: Promise<number | null>;
  url(path?: string): string;
  cli(args: string[]): Promise<CliResult>;
  appPids(): Promise<number[]>;
  /** SIGTERM, wait; returns the exit code and the app pids still alive. */
  stop(): Promise<{ code: number | null; leftover: number[] }>;
}

export async function launch(app: string, args: string[], opts: { prefix?: string[]; waitForProcess?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<Launched> {
  const registryDir = mkdtempSync(join(tmpdir(), 'hf-reg-'));
  const name = `l${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const env = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registryDir, ...opts.env };
  const argv = [process.execPath, CLI, 'start', app, '--port', '0', '--address', '127.0.0.1', '--name', name, ...args];
  const [cmd, ...rest] = [...(opts.prefix ?? []), ...argv];
  const child = spawn(cmd!, rest, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  let stderr = '';
  readLogLines(child.stdout!, (line) => lines.push(line));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const cli = (a: string[]) => runCli([...a, '--name', name], env, 20_000);
  const port = await waitFor(
    'holdfast to listen',
    () => {
      if (child.exitCode !== null) throw new Error(`holdfast exited ${child.exitCode}: ${stderr}`);
      try {
        const info = JSON.parse(readFileSync(join(registryDir, name, 'instance.json'), 'utf8')) as { port: number };
        return info.port > 0 ? info.port : undefined;
      } catch {
        return undefined;
      }
    },
    30_000,
  );
  const appPids = async (): Promise<number[]> => {
    const r = await cli(['status', '--json']);
    if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { groups: Array<{ processes: Array<{ pid: number; state: string }> }> }).groups.flatMap((g) => g.processes.map((p) => p.pid));
  };
  const seen = new Set<number>();
  if (opts.waitForProcess !== false) await waitFor('the first app process', async () => {
    const pids = await appPids().catch(() => []);
    for (const p of pids) seen.add(p);
    return pids.length > 0;
  }, 30_000, 200);
  return {
    child,
    name,
    registryDir,
    env,
    port,
    lines,
    stderr: () => stderr,
    exited,
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    cli,
    appPids: async () => {
      const pids = await appPids();
      for (const p of pids) seen.add(p);
      return pids;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const code = await exited;
      clearTimeout(timer);
      const leftover = await waitFor('app processes to go', () => ([...seen].filter(pidAlive).length === 0 ? [] : false), 10_000).catch(() => [...seen].filter(pidAlive));
      rmSync(registryDir, { recursive: true, force: true });
      return { code, leftover };
    },
  };
}

/** Resident memory of a process in bytes (Linux). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
