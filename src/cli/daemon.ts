// `holdfast start --daemonize`, as Passenger's: the command returns once the app serves (exit 0), or
// with the spawn error (exit 1) and nothing left running. The command (the parent) starts holdfast
// again as a detached child in its own session, with the log in a file, and waits for the child's
// one report over an IPC channel; then the child goes on alone, and `holdfast stop` ends it.

import { spawn } from 'node:child_process';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { HoldfastError } from '../errors';
import type { PoolSnapshot } from '../core/snapshots';
import { pidAlive } from '../admin/instance';
import { spawnErrorLines } from './status-render';

/** Set in the daemon child's environment: it is the one that runs, and it reports to its parent. */
export const DAEMON_CHILD_ENV = 'HOLDFAST_DAEMON_CHILD';

/** The one message the child sends its parent. */
export type DaemonReport = { type: 'serving'; address: string; port: number; pid: number } | { type: 'failed'; lines: string[] };

export function isDaemonChild(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[DAEMON_CHILD_ENV] === '1' && typeof process.send === 'function';
}

/**
 * In the parent: starts the child (this same command line, plus --log-file when none was given)
 * and waits for its report. argv: this process's, without node itself. Resolves the text to print; rejects with the child's error lines.
 */
export async function daemonize(opts: { argv: readonly string[]; logFile: string; addLogFile: boolean; deadlineMs: number }): Promise<string> {
  const args = [...opts.argv, ...(opts.addLogFile ? ['--log-file', opts.logFile] : [])];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    env: { ...process.env, [DAEMON_CHILD_ENV]: '1' },
  });
  return new Promise<string>((resolve, reject) => {
    let report: DaemonReport | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new HoldfastError('HF_SPAWN_TIMEOUT', `the app did not serve within ${Math.round(opts.deadlineMs / 1000)} s; holdfast was stopped (see ${opts.logFile})`));
    }, opts.deadlineMs);
    // Ctrl-C while waiting: the person gave up on this start; the background holdfast goes too.
    const giveUp = (): void => void child.kill('SIGTERM');
    process.once('SIGINT', giveUp);
    process.once('SIGTERM', giveUp);
    const done = (): void => {
      process.off('SIGINT', giveUp);
      process.off('SIGTERM', giveUp);
      clearTimeout(timer);
      child.removeAllListeners();
      if (child.connected) child.disconnect();
      child.unref();
    };
    child.once('error', (err) => {
      done();
      reject(new HoldfastError('HF_INTERNAL', `cannot start holdfast in the background: ${err.message}`, { cause: err }));
    });
    child.on('message', (message: DaemonReport) => {
      report = message;
      if (message.type === 'serving') {
        done();
        resolve(`holdfast serving on http://${hostPort(message.address, message.port)} in the background (pid ${message.pid}); log: ${opts.logFile}\n`);
      }
      // A failure: wait for the child to be gone, so that nothing is left when the command returns.
    });
    child.once('exit', (code, signal) => {
      done();
      if (report?.type === 'failed') reject(new DaemonFailed(report.lines));
      else reject(new HoldfastError('HF_INTERNAL', `holdfast exited (${signal ?? `code ${code}`}) before it served; see ${opts.logFile}`));
    });
  });
}

/** The child's error, already in the CLI's words. */
export class DaemonFailed extends Error {
  constructor(readonly lines: string[]) {
    super(lines[0] ?? 'holdfast could not start');
  }
}

/** In the child: sends its one report and lets go of the channel, so the parent may return. */
export function reportToParent(report: DaemonReport): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(report, undefined, {}, () => {
      if (process.connected) process.disconnect();
      resolve();
    });
  });
}

/** What the first start came to: serving when a process is enabled, else the spawn error that stopped it. */
export function startOutcome(snapshot: PoolSnapshot): { serving: true } | { serving: false; lines: string[] } {
  const groups = snapshot.groups;
  if (groups.some((g) => g.processes.some((p) => p.state === 'enabled'))) return { serving: true };
  for (const g of groups) {
    const error = g.resisting_deployment_error?.error ?? g.last_spawn_error;
    if (error) {
      return { serving: false, lines: [`holdfast: the app could not start: ${error.message.split('\n')[0]}`, ...spawnErrorLines(error, '  ', 30)] };
    }
  }
  return { serving: false, lines: ['holdfast: no app process became ready'] };
}

/**
 * Writes the pid file (Passenger's --pid-file); refuses one that names a running process.
 * Returns the function that removes it again (only while it still holds this pid).
 */
export function writePidFile(path: string): () => void {
  let old: string | undefined;
  try {
    old = readFileSync(path, 'utf8').trim();
  } catch {
    old = undefined;
  }
  const oldPid = Number(old);
  if (old && Number.isInteger(oldPid) && oldPid > 1 && oldPid !== process.pid && pidAlive(oldPid)) {
    throw new HoldfastError('HF_INSTANCE_EXISTS', `pid file ${path} names process ${oldPid}, which is running: stop it first (holdfast stop, or kill ${oldPid})`);
  }
  try {
    writeFileSync(path, `${process.pid}\n`, { mode: 0o644 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new HoldfastError('HF_CONFIG_INVALID', `--pid-file ${path} cannot be written (${e.code === 'EACCES' ? 'permission denied' : (e.code ?? e.message)})`, { cause: err });
  }
  return () => {
    try {
      if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
    } catch {
      // gone already
    }
  };
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
