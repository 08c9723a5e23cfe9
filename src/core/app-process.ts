// One app process as the pool sees it. It owns its own accounting, as Passenger's Process does:
// opening and closing sessions and connections, its request counters, whether it is busy and
// whether it takes a session now. The group decides what to do with it; it never touches counters.

import type { ProcessState } from './snapshots';
import type { ConnectionTaker, ProcessHandle, UpstreamTarget } from './process-handle';
import { atConcurrencyLimit, isBusy } from './scaling';
import type { ScalingOptions } from './scaling';

// spawning -> enabled -> draining -> stopped; a spawn that fails or is abandoned goes spawning -> stopped.
const TRANSITIONS: Record<ProcessState, readonly ProcessState[]> = {
  spawning: ['enabled', 'stopped'],
  enabled: ['draining', 'stopped'],
  draining: ['stopped'],
  stopped: [],
};

/** Why a process is drained and stopped. */
export type StopReason = 'idle' | 'max_requests' | 'memory_limit' | 'restart' | 'rollback' | 'shutdown' | 'max_request_time';

/** Why a process is spawned. */
export type SpawnCause = 'start' | 'demand' | 'restart' | 'replace' | 'recovery' | 'rollback';

/** What the proxy says of the request a session serves, so that a crash can name it. */
export interface RequestInfo {
  readonly method: string;
  readonly path: string;
  readonly requestId: string;
}

/** A process unreachable a moment ago is skipped by routing for this long (it may be dead). */
const UNREACHABLE_BACKOFF_MS = 1000;
/** How many requests whose connection broke a process remembers, for a crash to name. */
const MAX_BROKEN_REQUESTS = 16;

/**
 * Every request count of one process, over both paths: proxied sessions it counts itself, and
 * handed-off connections whose requests only the process sees (its taker reports them).
 */
export class RequestCounters {
  /** Proxied sessions open now (requests in flight, upgraded connections). Never negative. */
  open = 0;
  /** Proxied sessions served to the end. */
  completed = 0;

  constructor(private readonly taker: () => ConnectionTaker | undefined) {}

  /** Requests in progress as far as the pool knows: open sessions plus the hand-off's recent peak. */
  inFlight(): number {
    return this.open + (this.taker()?.peakRequests() ?? 0);
  }

  /** Requests served: sessions served to the end plus those started on handed-off connections. */
  served(): number {
    return this.completed + (this.taker()?.servedRequests() ?? 0);
  }

  /** Requests served or being served (what max_requests counts). */
  seen(): number {
    return this.served() + this.open;
  }
}

let nextId = 1;

export class AppProcess {
  readonly id = nextId++;
  readonly generation: number;
  readonly cause: SpawnCause;
  readonly spawnStartedAt: number;
  private stateValue: ProcessState = 'spawning';
  /** Set once the spawn succeeded; undefined while spawning. */
  handle: ProcessHandle | undefined;
  readonly requests = new RequestCounters(() => this.handle?.connectionTaker);
  /** The requests of the open sessions (a crash names them). */
  private readonly openRequests = new Set<RequestInfo>();
  /**
   * Requests whose session just ended because the process broke the connection: the proxy may see
   * the broken connection before the pool sees the exit, and a crash must still name them.
   */
  private readonly brokenRequests: Array<{ request: RequestInfo; at: number }> = [];
  /** Visitor connections handed off to the process now (the hand-off path); each holds a drain like a session. */
  connectionCount = 0;
  /** servedRequests() of its connection taker when the pool last looked, to notice activity. */
  lastServedSeen = 0;
  readyAt = 0;
  lastUsedAt = 0;
  /** undefined until the first sample. */
  rssBytes: number | undefined;
  cpuPercent = 0;
  /** Routing skips the process until then: a connection to it just failed and it may be dead. */
  private unreachableUntil = 0;
  /** Resolves when the process is stopped (set when stopping begins). */
  stopping: Promise<void> | undefined;
  /** Set when its death is blamed on its version (a deployment error, or a death in probation): the requests it had were not the cause. */
  blamedOnVersion = false;

  constructor(generation: number, cause: SpawnCause, now: number) {
    this.generation = generation;
    this.cause = cause;
    this.spawnStartedAt = now;
  }

  get state(): ProcessState {
    return this.stateValue;
  }

  get pid(): number {
    return this.handle?.pid ?? 0;
  }

  get target(): UpstreamTarget {
    if (!this.handle) throw new Error(`process #${this.id} has no target while ${this.stateValue}`);
    return this.handle.target;
  }

  /** The one place a state changes; an impossible transition is a bug. */
  transition(to: ProcessState): void {
    if (!TRANSITIONS[this.stateValue].includes(to)) {
      throw new Error(`AppProcess #${this.id}: illegal transition ${this.stateValue} -> ${to}`);
    }
    this.stateValue = to;
  }

  /** Became ready: it serves from now on. */
  enable(handle: ProcessHandle, now: number): void {
    this.handle = handle;
    this.transition('enabled');
    this.readyAt = now;
    this.lastUsedAt = now;
  }

  inProbation(now: number, probationMs: number): boolean {
    return this.readyAt > 0 && now - this.readyAt < probationMs;
  }

  eventLoopUtilization(): number | undefined {
    return this.handle?.eventLoopUtilization();
  }

  /** Busy in the scaling sense: at its concurrency limit, a saturated event loop, or requests piling up. */
  isBusy(options: Pick<ScalingOptions, 'concurrency' | 'busyEventLoopUtilization' | 'busySessions'>): boolean {
    const taker = this.handle?.connectionTaker;
    if (taker?.busyNow) {
      // One request at a time on handed-off connections (the Rack loader): busy when it said so,
      // when a proxied request fills it, or when it was busy most of the last moment.
      const utilization = this.eventLoopUtilization() ?? 0;
      return taker.busyNow() || this.requests.open >= Math.max(1, options.concurrency) || utilization >= options.busyEventLoopUtilization;
    }
    return isBusy({ sessions: this.requests.inFlight(), eventLoopUtilization: this.eventLoopUtilization() }, options);
  }

  /**
   * Whether a new session may go here now: enabled, not just found unreachable, under its
   * concurrency limit, and not past max_requests (0 = no limit; the group passes 0 while recycling is off).
   */
  takesSession(now: number, limits: { concurrency: number; maxRequests: number }): boolean {
    if (this.stateValue !== 'enabled' || now < this.unreachableUntil) return false;
    if (this.handle?.connectionTaker?.busyNow?.() === true) return false;
    if (atConcurrencyLimit({ sessions: this.requests.open }, limits)) return false;
    return !(limits.maxRequests > 0 && this.requests.seen() >= limits.maxRequests);
  }

  openSession(now: number, request: RequestInfo | undefined): void {
    this.requests.open++;
    this.lastUsedAt = now;
    if (request) this.openRequests.add(request);
  }

  /** unreachable: the request provably never reached the process; it is skipped for a moment and not counted as served. */
  closeSession(now: number, request: RequestInfo | undefined, unreachable: boolean): void {
    this.requests.open--;
    this.lastUsedAt = now;
    if (request) this.openRequests.delete(request);
    if (unreachable) {
      this.unreachableUntil = now + UNREACHABLE_BACKOFF_MS;
      if (request) {
        this.brokenRequests.push({ request, at: now });
        if (this.brokenRequests.length > MAX_BROKEN_REQUESTS) this.brokenRequests.shift();
      }
    } else this.requests.completed++;
  }

  openConnection(now: number): void {
    this.connectionCount++;
    this.lastUsedAt = now;
  }

  closeConnection(now: number): void {
    this.connectionCount--;
    this.lastUsedAt = now;
  }

  /**
   * The requests it was serving when it died (proxied ones; the hand-off path's are the process's
   * own): those still open, and those whose connection it broke a moment before.
   */
  requestsInFlight(now: number): RequestInfo[] {
    const broken = this.brokenRequests.filter((b) => now - b.at <= UNREACHABLE_BACKOFF_MS).map((b) => b.request);
    return [...broken, ...this.openRequests];
  }

  /** Nothing holds a drain: no session and no handed-off connection. */
  isDrained(): boolean {
    return this.requests.open === 0 && this.connectionCount === 0;
  }

  /** Whether it serves or holds visitors now: a session, a handed-off connection, or requests on one. */
  inUse(): boolean {
    return this.connectionCount > 0 || this.requests.inFlight() > 0;
  }
}
