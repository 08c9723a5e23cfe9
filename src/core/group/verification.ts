// Self-check mode (HOLDFAST_VERIFY_INVARIANTS=1, as Passenger's): the group's invariants, checked
// after every change by Group.reconsider(). The integration tests run with it on.

import type { AppProcess } from '../app-process';

export const VERIFY_INVARIANTS = process.env['HOLDFAST_VERIFY_INVARIANTS'] === '1';

export interface VerifyView {
  name: string;
  processes: readonly AppProcess[];
  maxPoolSize: number;
  /** How far over max_pool_size the pool may run now (the surge of a restart or rollback, else 0). */
  surge: number;
  waiting: number;
  waitersAvoidNoPid: boolean;
  closing: boolean;
  /** Whether a process could take a session now. */
  sessionAvailable: boolean;
  resisting: boolean;
}

export function verifyInvariants(v: VerifyView): void {
  const fail = (what: string) => {
    throw new Error(`Group ${v.name}: invariant broken: ${what}`);
  };
  let spawning = 0;
  for (const p of v.processes) {
    if (p.state === 'stopped') fail(`stopped process #${p.id} still listed`);
    if (p.requests.open < 0) fail(`process #${p.id} has ${p.requests.open} sessions`);
    if (p.connectionCount < 0) fail(`process #${p.id} has ${p.connectionCount} connections`);
    if (p.state === 'spawning') {
      spawning++;
      if (p.handle || p.requests.open !== 0) fail(`spawning process #${p.id} has a handle or sessions`);
      // While resisting, the only spawns are replacements from a release that served, rollbacks and recoveries.
      if (v.resisting && p.cause !== 'replace' && p.cause !== 'rollback' && p.cause !== 'recovery' && p.cause !== 'restart') {
        fail(`process #${p.id} spawns for ${p.cause} while resisting`);
      }
    } else if (!p.handle) fail(`process #${p.id} is ${p.state} without a handle`);
  }
  if (spawning > 1) fail(`${spawning} spawns at once`);
  if (v.waiting > 0 && !v.closing && v.sessionAvailable && v.waitersAvoidNoPid) fail('requests wait while a process could take them');
  if (v.processes.length > v.maxPoolSize + v.surge) fail(`${v.processes.length} processes > max_pool_size ${v.maxPoolSize} + surge ${v.surge}`);
}
