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
  // Runs once per request: loops, no intermediate arrays.
  let anyAvailable = false;
  let anyPreferred = false;
  for (const p of processes) {
    if (!p.available) continue;
    anyAvailable = true;
    if (p.pid !== avoidPid) anyPreferred = true;
  }
  if (!anyAvailable) return undefined;
  // The candidates: available, and not avoidPid unless it is the only one.
  const skip = anyPreferred ? avoidPid : undefined;
  let newest = -Infinity;
  for (const p of processes) if (p.available && (skip === undefined || p.pid !== skip) && p.generation > newest) newest = p.generation;
  let fresh: P | undefined;
  let any: P | undefined;
  for (const p of processes) {
    if (!p.available || (skip !== undefined && p.pid === skip)) continue;
    if (any === undefined || lessBusy(p, any)) any = p;
    if (p.generation === newest && !p.busy && (fresh === undefined || lessBusy(p, fresh))) fresh = p;
  }
  return fresh ?? any;
}

function lessBusy(a: RoutableProcess, b: RoutableProcess): boolean {
  return a.sessions < b.sessions || (a.sessions === b.sessions && a.lastUsedAt < b.lastUsedAt);
}
