// One app process as the pool sees it: its state, sessions, load and counters.

import type { ProcessState } from './control';
import type { ProcessHandle, UpstreamTarget } from './spawner';

// spawning -> enabled -> draining -> stopped; a spawn that fails or is abandoned goes spawning -> stopped.
const TRANSITIONS: Record<ProcessState, readonly ProcessState[]> = {
  spawning: ['enabled', 'stopped'],
  enabled: ['draining', 'stopped'],
  draining: ['stopped'],
  stopped: [],
};

export type StopReason =
  | 'idle'
  | 'max_requests'
  | 'memory_limit'
  | 'restart'
  | 'shutdown'
  | 'superseded'
  | 'died'
  | 'unreachable'
  | 'max_request_time';

let nextId = 1;

export class AppProcess {
  readonly id = nextId++;
  readonly generation: number;
  readonly spawnStartedAt: number;
  private stateValue: ProcessState = 'spawning';
  /** Set once the spawn succeeded; undefined while spawning. */
  handle: ProcessHandle | undefined;
  /** Sessions open on this process now (requests in flight, upgraded connections). */
  sessions = 0;
  /** Sessions served to the end. */
  processed = 0;
  /** Visitor connections handed off to the process (the hand-off path); it holds a drain like a session. */
  connections = 0;
  /** servedRequests() of its connection taker when the pool last looked, to notice activity. */
  lastServedSeen = 0;
  readyAt = 0;
  lastUsedAt = 0;
  rssBytes = 0;
  cpuPercent = 0;
  /** Routing skips the process until then: a connection to it just failed and it may be dead. */
  unreachableUntil = 0;
  /** Why it is draining or stopped. */
  stopReason: StopReason | undefined;
  /** Resolves when the process is stopped (set when stopping begins). */
  stopping: Promise<void> | undefined;

  constructor(generation: number, now: number) {
    this.generation = generation;
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

  eventLoopUtilization(): number | undefined {
    return this.handle?.eventLoopUtilization();
  }

  /** Requests in progress as far as the pool knows: proxied sessions plus the hand-off's recent peak. */
  load(): number {
    return this.sessions + (this.handle?.connections?.peakRequests() ?? 0);
  }

  /** Requests served: proxied sessions served to the end plus those started on handed-off connections. */
  requestsServed(): number {
    return this.processed + (this.handle?.connections?.servedRequests() ?? 0);
  }

  /** Requests served or being served (what max_requests counts). */
  requestsSeen(): number {
    return this.requestsServed() + this.sessions;
  }

  /** Nothing holds a drain: no session and no handed-off connection. */
  drained(): boolean {
    return this.sessions === 0 && this.connections === 0;
  }
}
