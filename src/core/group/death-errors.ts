// The spawn errors a death becomes: a new version that died before its restart finished or
// crash-loops (category died), or a process that died within probation_time (category probation).

import { SpawnError, newErrorId } from '../../errors';
import type { AppProcess } from '../app-process';
import type { DeathContext } from './resistance';

export function deathError(p: AppProcess, ctx: DeathContext, now: number, appRoot: string, when: string, category: 'died' | 'probation'): SpawnError {
  const secs = Math.round((now - p.readyAt) / 100) / 10;
  return new SpawnError(`app process ${p.pid} of generation ${p.generation} ${howItDied(ctx)} ${secs} s after it became ready, ${when}`, details(p, ctx, now, appRoot, category));
}

export function probationError(p: AppProcess, ctx: DeathContext, now: number, appRoot: string): SpawnError {
  const secs = Math.round((now - p.readyAt) / 100) / 10;
  return new SpawnError(`app process ${p.pid} ${howItDied(ctx)} ${secs} s after it became ready`, details(p, ctx, now, appRoot, 'probation'));
}

function details(p: AppProcess, ctx: DeathContext, now: number, appRoot: string, category: 'died' | 'probation') {
  return {
    category,
    errorId: newErrorId(),
    command: ctx.command,
    exitCode: ctx.exit.code,
    signal: ctx.exit.signal,
    outputTail: p.handle?.recentOutput?.() ?? [],
    release: p.handle?.release ?? appRoot,
    generation: p.generation,
    at: now,
  };
}

function howItDied(ctx: DeathContext): string {
  const exit = ctx.exit;
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  return exit.signal === 'SIGKILL' ? `${how} (SIGKILL usually means the system ran out of memory)` : how;
}
