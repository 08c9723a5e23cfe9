// What status shows of a group and its processes: plain snapshots, built from the live objects.

import type { SpawnError } from '../../errors';
import type { AppProcess } from '../app-process';
import type { ProcessSnapshot, SpawnErrorSnapshot } from '../snapshots';

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
