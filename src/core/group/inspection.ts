// What status shows of a group and its processes: plain snapshots, built from the live objects.

import type { SpawnError } from '../../errors';
import type { AppProcess } from '../app-process';
import type { ProcessSnapshot, ResistingSnapshot, SpawnErrorSnapshot } from '../snapshots';
import type { Resistance } from './resistance';

export function spawnErrorSnapshot(e: SpawnError): SpawnErrorSnapshot {
  const d = e.details;
  return {
    error_id: d.errorId,
    code: e.code,
    message: e.message,
    category: d.category,
    exit_code: d.exitCode,
    signal: d.signal,
    command: d.command,
    output_tail: [...d.outputTail],
    release: d.release,
    generation: d.generation,
    at: new Date(d.at).toISOString(),
  };
}

export function processSnapshot(p: AppProcess, now: number, probationMs: number): ProcessSnapshot {
  return {
    pid: p.pid,
    generation: p.generation,
    state: p.state,
    in_probation: p.state === 'enabled' && p.inProbation(now, probationMs),
    sessions: p.requests.inFlight(),
    processed: p.requests.served(),
    connections: p.connectionCount,
    started_at: new Date(p.readyAt || p.spawnStartedAt).toISOString(),
    uptime_seconds: p.readyAt ? Math.floor((now - p.readyAt) / 1000) : 0,
    cpu_percent: Math.round(p.cpuPercent * 10) / 10,
    rss_bytes: p.rssBytes ?? null,
    // lastUsedAt starts at readiness (for least-recently-used ties); a process that never had a session was never used.
    last_used_at: p.requests.seen() > 0 ? new Date(p.lastUsedAt).toISOString() : null,
    release: p.handle?.release ?? '',
    commit: p.handle?.commit ?? null,
  };
}

export function resistingSnapshot(resistance: Resistance, serving: number, now: number): ResistingSnapshot | null {
  const v = resistance.view(serving);
  if (!v) return null;
  return {
    since: new Date(v.since).toISOString(),
    for_seconds: Math.floor((now - v.since) / 1000),
    error: spawnErrorSnapshot(v.error),
    capacity: { serving: v.serving, target: v.target },
    rollback_release: v.rollbackRelease,
    note: capacityNote(v),
  };
}

/** What the freeze means for capacity, in one sentence. */
function capacityNote(v: { serving: number; target: number; rollbackRelease: string | null; broken: boolean }): string {
  if (!v.broken) return `${v.serving} process(es) of the running version keep serving; nothing is spawned until holdfast restart or holdfast resume`;
  if (v.rollbackRelease) return `the previous release ${v.rollbackRelease} keeps serving; the pool is brought back to ${v.target} process(es) from it`;
  if (v.serving === 0) return 'no process of a version that served is left; holdfast tries one spawn at a time with back-off';
  return `the app dir is not a release layout (current -> releases/...), so the previous version cannot be started again: ${v.serving} of ${v.target} process(es) serve until holdfast restart or holdfast resume`;
}
