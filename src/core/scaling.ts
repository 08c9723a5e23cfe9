// When to spawn, idle-clean and recycle. Pure decisions over plain views; group.ts acts on them.

export interface ScalingOptions {
  minInstances: number;
  maxPoolSize: number;
  /** Sessions per process; 0 = unlimited. */
  concurrency: number;
  poolIdleTimeMs: number;
  maxRequests: number;
  memoryLimitBytes: number;
  /** Event-loop utilization at or above which a Node process counts as busy. */
  busyEventLoopUtilization: number;
  /** With unlimited concurrency, in-flight sessions at or above which a process counts as busy. */
  busySessions: number;
}

export const DEFAULT_BUSY_EVENT_LOOP_UTILIZATION = 0.85;
export const DEFAULT_BUSY_SESSIONS = 16;

export interface LoadView {
  sessions: number;
  /** undefined for generic apps (no hook reports it). */
  eventLoopUtilization: number | undefined;
}

/** At the hard concurrency limit: takes no further session. */
export function atConcurrencyLimit(p: { sessions: number }, o: Pick<ScalingOptions, 'concurrency'>): boolean {
  return o.concurrency > 0 && p.sessions >= o.concurrency;
}

/**
 * Busy: at the concurrency limit where there is one; otherwise an event loop that is saturated
 * while it has work, or sessions piling up.
 */
export function isBusy(p: LoadView, o: Pick<ScalingOptions, 'concurrency' | 'busyEventLoopUtilization' | 'busySessions'>): boolean {
  if (o.concurrency > 0) return p.sessions >= o.concurrency;
  if (p.sessions >= o.busySessions) return true;
  return p.sessions > 0 && p.eventLoopUtilization !== undefined && p.eventLoopUtilization >= o.busyEventLoopUtilization;
}

export interface SpawnView {
  /** Processes that count against max_pool_size: spawning, enabled and draining. */
  live: number;
  enabled: number;
  spawning: number;
  /** Enabled processes that are busy. */
  busyEnabled: number;
  waiting: number;
  /** Room left in the whole pool (max_pool_size across groups). */
  poolRoom: number;
  resisting: boolean;
  /** A restart manages spawning itself. */
  restarting: boolean;
  /** The last spawn failed and its back-off has not passed yet. */
  backingOff: boolean;
}

export type SpawnDecision = 'spawn' | 'none';

/** One spawn at a time per app, never past max_pool_size, never while resisting or restarting. */
export function spawnDecision(v: SpawnView, o: Pick<ScalingOptions, 'minInstances' | 'maxPoolSize'>): SpawnDecision {
  if (v.resisting || v.restarting || v.spawning > 0 || v.backingOff) return 'none';
  if (v.live >= o.maxPoolSize || v.poolRoom <= 0) return 'none';
  if (v.enabled + v.spawning < o.minInstances) return 'spawn';
  if (v.enabled === 0 && v.waiting > 0) return 'spawn';
  if (v.enabled > 0 && v.busyEnabled === v.enabled) return 'spawn';
  return 'none';
}

export interface IdleView {
  id: number;
  sessions: number;
  lastUsedAt: number;
}

/** Processes to shut down for idleness, oldest use first, never below min_instances; pool_idle_time 0 = never. */
export function idleToClean(enabled: readonly IdleView[], now: number, o: Pick<ScalingOptions, 'minInstances' | 'poolIdleTimeMs'>): number[] {
  if (o.poolIdleTimeMs <= 0) return [];
  const spare = enabled.length - o.minInstances;
  if (spare <= 0) return [];
  return enabled
    .filter((p) => p.sessions === 0 && now - p.lastUsedAt >= o.poolIdleTimeMs)
    .sort((a, b) => a.lastUsedAt - b.lastUsedAt)
    .slice(0, spare)
    .map((p) => p.id);
}

export type RecycleReason = 'max_requests' | 'memory_limit';

export function recycleReason(p: { processed: number; rssBytes: number }, o: Pick<ScalingOptions, 'maxRequests' | 'memoryLimitBytes'>): RecycleReason | undefined {
  if (o.memoryLimitBytes > 0 && p.rssBytes > o.memoryLimitBytes) return 'memory_limit';
  if (o.maxRequests > 0 && p.processed >= o.maxRequests) return 'max_requests';
  return undefined;
}

/** Back-off after failed spawns while nothing serves: 1 s, 2 s, 4 s ... up to 60 s. */
export function spawnBackoffMs(consecutiveFailures: number): number {
  if (consecutiveFailures <= 0) return 0;
  return Math.min(60_000, 1000 * 2 ** Math.min(consecutiveFailures - 1, 6));
}
