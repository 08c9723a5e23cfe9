// Which process gets the next session. Pure: no clocks or I/O, only the views it is given.

export interface RoutableProcess {
  readonly pid: number;
  readonly generation: number;
  readonly sessions: number;
  readonly lastUsedAt: number;
  /** May take a session now: enabled, under its concurrency limit, not marked unreachable. */
  readonly available: boolean;
  /** Busy in the scaling sense (saturated event loop, sessions piling up). */
  readonly busy: boolean;
}

/**
 * The least busy available process. The newest generation is preferred while it has a process that
 * is not busy, so a new version takes traffic as soon as it is up (and a bad one shows itself early);
 * within that, the fewest sessions, then the least recently used. avoidPid is a last resort.
 */
export function pickProcess<P extends RoutableProcess>(processes: readonly P[], avoidPid?: number): P | undefined {
  const available = processes.filter((p) => p.available);
  if (available.length === 0) return undefined;
  const preferred = available.filter((p) => p.pid !== avoidPid);
  const pool = preferred.length > 0 ? preferred : available;
  const newest = Math.max(...pool.map((p) => p.generation));
  const fresh = pool.filter((p) => p.generation === newest && !p.busy);
  return leastBusy(fresh.length > 0 ? fresh : pool);
}

function leastBusy<P extends RoutableProcess>(processes: readonly P[]): P {
  let best = processes[0]!;
  for (const p of processes) {
    if (p.sessions < best.sessions || (p.sessions === best.sessions && p.lastUsedAt < best.lastUsedAt)) best = p;
  }
  return best;
}
