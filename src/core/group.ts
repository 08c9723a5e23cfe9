// One app: its processes, the wait queue, the generation, restarts and the deployment-error flag.
//
// Invariants (verifyInvariants() checks them; tests call it after every step):
// - `processes` holds no stopped process; a spawning process has no handle and no sessions.
// - At most one process is spawning at a time (one spawn at a time per app).
// - Sessions are never negative; only an enabled process gets new sessions.
// - Requests wait in the queue only while no process can take them.
// - While resisting, the only spawns are recoveries: the replacement of a died process from its own
//   release, or one spawn at a time with back-off when nothing at all is left.
// State changes synchronously; after every await the code re-checks generation and state.

import { CapacityError, HoldfastError, SpawnError, newErrorId } from '../errors';
import type { SpawnErrorDetails } from '../errors';
import { AppProcess } from './app-process';
import type { StopReason } from './app-process';
import type { Clock, TimerHandle } from './clock';
import type {
  GroupSnapshot,
  LastRestartSnapshot,
  ProcessSnapshot,
  RestartKind,
  RestartOutcome,
  RestartProgress,
  RestartSnapshot,
  RestartTicket,
  SpawnErrorSnapshot,
} from './control';
import { runRestart } from './restart';
import type { RestartHost } from './restart';
import { pickProcess } from './routing';
import type { RoutableProcess } from './routing';
import { atConcurrencyLimit, idleToClean, isBusy, recycleReason, spawnBackoffMs, spawnDecision } from './scaling';
import type { ScalingOptions } from './scaling';
import type { AcquireOptions, ConnectionLease, ConnectionSource, Session, SessionSource } from './session';
import type { ExitInfo, Spawner } from './spawner';

export interface GroupOptions extends ScalingOptions {
  name: string;
  appRoot: string;
  environment: string;
  /** 0 = unbounded. */
  maxRequestQueueSize: number;
  drainTimeoutMs: number;
  /** Between SIGTERM and SIGKILL. */
  terminateGraceMs: number;
  rollingRestarts: boolean;
  resistDeploymentErrors: boolean;
  /** A process that exits this soon after becoming ready counts as a failed spawn. */
  probationMs: number;
  /** How often RSS and CPU are sampled (memory_limit). */
  usageSampleIntervalMs: number;
  /** How often idle cleaning and scaling are reconsidered without traffic. */
  tickIntervalMs: number;
}

export type SpawnCause = 'start' | 'demand' | 'restart' | 'replace' | 'recovery';

/** What the group tells the outside world; the supervisor turns it into log lines and metrics. */
export interface GroupObserver {
  spawnStarted?(info: { generation: number; cause: SpawnCause; release: string | undefined }): void;
  spawned?(process: AppProcess, info: { cause: SpawnCause; durationMs: number }): void;
  spawnFailed?(error: SpawnError, info: { cause: SpawnCause; resisting: boolean }): void;
  processDraining?(process: AppProcess, reason: StopReason): void;
  processStopped?(process: AppProcess, reason: StopReason, exit: ExitInfo): void;
  processDied?(process: AppProcess, exit: ExitInfo): void;
  resistingSet?(error: SpawnError): void;
  resistingCleared?(why: 'restart' | 'resume'): void;
  restartStarted?(info: { kind: RestartKind; generation: number }): void;
  restartProgress?(progress: RestartProgress): void;
  restartFinished?(outcome: RestartOutcome): void;
}

/** The pool's say on how many more processes may start (max_pool_size across all groups). */
export interface PoolRoom {
  room(): number;
}

interface Waiter {
  avoidPid: number | undefined;
  resolve(session: Session): void;
  reject(error: unknown): void;
  cleanup(): void;
}

interface Resisting {
  error: SpawnError;
  since: number;
}

interface ActiveRestart {
  kind: RestartKind;
  generation: number;
  startedAt: number;
  total: number;
  replaced: number;
  abort: AbortController;
  done: Promise<RestartOutcome>;
}

const UNREACHABLE_BACKOFF_MS = 1000;

function abortError(): Error {
  const err = new Error('aborted');
  err.name = 'AbortError';
  return err;
}

export class Group implements SessionSource, ConnectionSource {
  readonly options: GroupOptions;
  private readonly spawner: Spawner;
  private readonly clock: Clock;
  private readonly observer: GroupObserver;
  private readonly poolRoom: PoolRoom;

  /** Live processes (never stopped ones), in spawn order. */
  private processes: AppProcess[] = [];
  private waiters: Waiter[] = [];
  /** The newest generation; every restart raises it. */
  private generation = 1;
  /** The release (resolved app dir) each generation was started from. */
  private readonly releases = new Map<number, string>();
  /** The newest generation that had a process pass probation: recoveries start from it. */
  private lastGoodGeneration = 0;
  private resistingState: Resisting | undefined;
  private lastSpawnError: SpawnError | undefined;
  private consecutiveFailures = 0;
  private backoffUntil = 0;
  /** Generations of died processes to replace while resisting (from their own release). */
  private pendingReplacements: number[] = [];
  private recoveryTimer: TimerHandle | undefined;
  private restartState: ActiveRestart | undefined;
  private lastRestart: LastRestartSnapshot | undefined;
  private readonly spawnAborts = new Map<AppProcess, AbortController>();
  /** Settles when the spawn of that process has settled either way. */
  private readonly spawnsInFlight = new Map<AppProcess, Promise<unknown>>();
  private readonly drainWaiters = new Map<AppProcess, Array<() => void>>();
  private closing = false;
  /** start() spawns min_instances itself, one after another. */
  private starting = false;
  private closed: Promise<void> | undefined;
  private readonly timers: TimerHandle[] = [];

  constructor(options: GroupOptions, deps: { spawner: Spawner; clock: Clock; observer?: GroupObserver; poolRoom?: PoolRoom }) {
    this.options = options;
    this.spawner = deps.spawner;
    this.clock = deps.clock;
    this.observer = deps.observer ?? {};
    this.poolRoom = deps.poolRoom ?? { room: () => this.options.maxPoolSize - this.liveCount() };
  }

  get name(): string {
    return this.options.name;
  }

  /** Spawns min_instances processes one after another, then starts the background checks. */
  async start(): Promise<void> {
    this.timers.push(this.clock.setInterval(() => this.tick(), this.options.tickIntervalMs));
    this.timers.push(this.clock.setInterval(() => this.sampleUsage(), this.options.usageSampleIntervalMs));
    this.starting = true;
    try {
      for (let i = 0; i < this.options.minInstances && !this.closing && !this.resistingState; i++) {
        try {
          await this.spawnOne(this.generation, 'start');
        } catch {
          // recorded by spawnOne; requests will see the error page or the resisting pool
          break;
        }
      }
    } finally {
      this.starting = false;
    }
  }

  // ---- sessions ---------------------------------------------------------------------------

  /**
   * A session at once when a process can take one and nobody waits before us; undefined when the
   * request would have to queue (or be refused): then acquire() decides. No promise, no timer.
   */
  tryAcquire(avoidPid?: number): Session | undefined {
    if (this.closing || this.waiters.length > 0) return undefined;
    const process = this.route(avoidPid);
    if (!process) return undefined;
    const session = this.openSession(process);
    this.maybeScale();
    return session;
  }

  acquire(options: AcquireOptions = {}): Promise<Session> {
    if (this.closing) return Promise.reject(new CapacityError('HF_SHUTTING_DOWN', 'holdfast is stopping'));
    if (options.signal?.aborted) return Promise.reject(abortError());
    const session = this.tryAcquire(options.avoidPid);
    if (session) return Promise.resolve(session);
    // Nothing can take it now: fail fast when nothing will be able to either.
    const hopeless = this.hopelessError();
    if (hopeless) return Promise.reject(hopeless);
    if (this.options.maxRequestQueueSize > 0 && this.waiters.length >= this.options.maxRequestQueueSize) {
      return Promise.reject(new CapacityError('HF_QUEUE_FULL', `the request queue is full (${this.options.maxRequestQueueSize} waiting)`));
    }
    return new Promise<Session>((resolve, reject) => {
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(abortError());
      };
      const waiter: Waiter = {
        avoidPid: options.avoidPid,
        resolve,
        reject,
        cleanup: () => options.signal?.removeEventListener('abort', onAbort),
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.dispatch();
      this.maybeScale();
    });
  }

  /** The error a new request gets at once because no process runs and none is on its way. */
  private hopelessError(): HoldfastError | undefined {
    if (this.enabled().length > 0 || this.spawningCount() > 0 || this.restartState) return undefined;
    if (this.processes.some((p) => p.state === 'draining')) return undefined;
    if (!this.lastSpawnError) return undefined;
    // Without resistance a new request may try the spawn again once the back-off has passed.
    if (!this.resistingState && this.clock.now() >= this.backoffUntil) return undefined;
    return this.lastSpawnError;
  }

  private route(avoidPid: number | undefined): AppProcess | undefined {
    return this.pick(() => true, (p) => p.sessions, avoidPid);
  }

  /**
   * The least busy of the enabled processes that `admits`, by pickProcess: `count` is what "fewest"
   * compares (sessions for a request, connections for a connection).
   */
  private pick(admits: (p: AppProcess) => boolean, count: (p: AppProcess) => number, avoidPid: number | undefined): AppProcess | undefined {
    const now = this.clock.now();
    const views: Array<RoutableProcess & { process: AppProcess }> = [];
    for (const p of this.processes) {
      if (p.state !== 'enabled' || !admits(p)) continue;
      views.push({
        process: p,
        pid: p.pid,
        generation: p.generation,
        sessions: count(p),
        lastUsedAt: p.lastUsedAt,
        available: this.takesSessions(p, now),
        busy: this.busy(p),
      });
    }
    return pickProcess(views, avoidPid)?.process;
  }

  private busy(p: AppProcess): boolean {
    return isBusy({ sessions: p.load(), eventLoopUtilization: p.eventLoopUtilization() }, this.options);
  }

  // ---- handed-off connections ---------------------------------------------------------------

  /**
   * The hand-off path: a whole visitor connection for the least busy process that takes them.
   * Balancing is per connection (fewest connections, then least recently used; the newest
   * generation first, as for sessions); a queue or a concurrency limit needs per-request control,
   * so then the answer is undefined and the proxy takes the connection.
   */
  tryAcquireConnection(): ConnectionLease | undefined {
    const p = this.connectionTarget();
    if (!p) return undefined;
    const now = this.clock.now();
    const taker = p.handle!.connections!;
    p.connections++;
    p.lastUsedAt = now;
    this.maybeScale();
    return {
      pid: p.pid,
      generation: p.generation,
      hand: (connection, done) => {
        let open = true;
        taker.take(connection, (returned) => {
          if (!open) return;
          open = false;
          this.connectionEnded(p);
          done(returned);
        });
      },
    };
  }

  /** Whether a connection arriving now would be handed off (the proxy then closes its own connections after their answer, so they come back and are). */
  takesConnectionsNow(): boolean {
    return this.connectionTarget() !== undefined;
  }

  /**
   * Where a connection would go now. A process in probation takes none: if it crashes (a version
   * that dies right after booting), the requests the proxy gave it are retried elsewhere, while a
   * handed-off connection's request would be lost with it.
   */
  private connectionTarget(): AppProcess | undefined {
    if (this.closing || this.waiters.length > 0 || this.options.concurrency > 0) return undefined;
    return this.pick((p) => p.handle?.connections !== undefined && !this.inProbation(p), (p) => p.connections, undefined);
  }

  /** Asks every process on the hand-off path for its latest request counts (metrics read them). */
  async flushHandedOff(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.handle?.connections?.flush()));
  }

  private connectionEnded(p: AppProcess): void {
    p.connections--;
    p.lastUsedAt = this.clock.now();
    if (p.state === 'draining' && p.drained()) this.releaseDrainWaiters(p);
  }

  /** Recycles the process when it reached max_requests (the process said so, or the pool noticed); true when it does. */
  private checkRequestLimit(p: AppProcess): boolean {
    if (p.state !== 'enabled' || this.resistingState || this.options.maxRequests <= 0) return false;
    if (p.requestsSeen() < this.options.maxRequests) return false;
    void this.stopProcess(p, 'max_requests');
    return true;
  }

  /**
   * Kept-alive connections stay where they were handed: when a process joins, those of fuller
   * processes that are at rest come back and are handed again, to the least loaded.
   */
  private rebalanceConnections(): void {
    const takers = this.enabled().filter((p) => p.handle?.connections && !this.inProbation(p));
    if (takers.length < 2) return;
    const total = takers.reduce((n, p) => n + p.connections, 0);
    const fair = Math.ceil(total / takers.length);
    for (const p of takers) if (p.connections > fair) p.handle!.connections!.shed(fair);
  }

  private takesSessions(p: AppProcess, now: number): boolean {
    if (p.state !== 'enabled' || now < p.unreachableUntil) return false;
    if (atConcurrencyLimit(p, this.options)) return false;
    // A process never starts more sessions than max_requests allows (recycling is off while resisting).
    if (this.options.maxRequests > 0 && !this.resistingState && p.requestsSeen() >= this.options.maxRequests) return false;
    return true;
  }

  private openSession(p: AppProcess): Session {
    p.sessions++;
    p.lastUsedAt = this.clock.now();
    let open = true;
    return {
      pid: p.pid,
      generation: p.generation,
      target: p.target,
      close: (outcome) => {
        if (!open) return;
        open = false;
        this.closeSession(p, outcome?.unreachable === true);
      },
    };
  }

  private closeSession(p: AppProcess, unreachable: boolean): void {
    p.sessions--;
    const now = this.clock.now();
    p.lastUsedAt = now;
    if (unreachable) p.unreachableUntil = now + UNREACHABLE_BACKOFF_MS;
    else p.processed++;
    if (p.state === 'draining' && p.drained()) this.releaseDrainWaiters(p);
    // Only max_requests is decided per request; memory_limit is decided where RSS is sampled.
    this.checkRequestLimit(p);
    this.dispatch();
    this.maybeScale();
  }

  /** Hands queued requests to processes that can take them, oldest request first. */
  private dispatch(): void {
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0]!;
      const p = this.route(waiter.avoidPid);
      if (!p) return;
      this.waiters.shift();
      waiter.cleanup();
      waiter.resolve(this.openSession(p));
    }
  }

  private rejectWaiters(error: unknown): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      w.cleanup();
      w.reject(error);
    }
  }

  // ---- spawning ---------------------------------------------------------------------------

  private maybeScale(): void {
    if (this.closing || this.starting) return;
    if (this.pendingReplacements.length > 0 && this.spawningCount() === 0) {
      const generation = this.pendingReplacements.shift()!;
      this.spawnOne(generation, 'replace').catch(() => undefined);
      return;
    }
    // Called twice per request: count in one pass, allocate nothing, and stop early when a spawn
    // is out of the question anyway.
    const now = this.clock.now();
    const backingOff = now < this.backoffUntil;
    if (this.resistingState || this.restartState || backingOff) return;
    let enabled = 0;
    let spawning = 0;
    let busyEnabled = 0;
    for (const p of this.processes) {
      if (p.state === 'spawning') spawning++;
      else if (p.state === 'enabled') {
        enabled++;
        if (!this.takesSessions(p, now) || this.busy(p)) busyEnabled++;
      }
    }
    if (spawning > 0) return;
    const decision = spawnDecision(
      {
        live: this.liveCount(),
        enabled,
        spawning,
        busyEnabled,
        waiting: this.waiters.length,
        poolRoom: this.poolRoom.room(),
        resisting: this.resistingState !== undefined,
        restarting: this.restartState !== undefined,
        backingOff,
      },
      this.options,
    );
    if (decision === 'spawn') this.spawnOne(this.generation, enabled < this.options.minInstances ? 'replace' : 'demand').catch(() => undefined);
  }

  /**
   * Spawns one process of the generation and enables it. Rejects with the SpawnError (recorded,
   * observed and acted on here, so callers only decide what it means for them) or an AbortError.
   */
  private spawnOne(generation: number, cause: SpawnCause, signal?: AbortSignal): Promise<AppProcess> {
    const p = new AppProcess(generation, this.clock.now());
    const spawning = this.spawnProcess(p, cause, signal);
    const settled = spawning.then(
      () => undefined,
      () => undefined,
    );
    this.spawnsInFlight.set(p, settled);
    void settled.then(() => this.spawnsInFlight.delete(p));
    return spawning;
  }

  private async spawnProcess(p: AppProcess, cause: SpawnCause, signal: AbortSignal | undefined): Promise<AppProcess> {
    const generation = p.generation;
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort();
    signal?.addEventListener('abort', onOuterAbort, { once: true });
    this.processes.push(p);
    this.spawnAborts.set(p, abort);
    // A generation keeps the release its first process came from; a new one resolves the app dir anew.
    const release = this.releases.get(generation);
    this.observer.spawnStarted?.({ generation, cause, release });
    try {
      const handle = await this.spawner.spawn(release === undefined ? { generation, signal: abort.signal } : { generation, release, signal: abort.signal });
      // Re-check after the await: closing, aborted or outdated spawns are stopped, not attached.
      const outdated = generation < this.generation && cause !== 'replace' && cause !== 'recovery';
      if (this.closing || abort.signal.aborted || outdated) {
        p.handle = handle;
        this.forget(p);
        void handle.terminate(this.options.terminateGraceMs);
        throw abortError();
      }
      p.handle = handle;
      p.transition('enabled');
      p.readyAt = this.clock.now();
      p.lastUsedAt = p.readyAt;
      if (!this.releases.has(generation)) this.releases.set(generation, handle.release);
      this.consecutiveFailures = 0;
      this.backoffUntil = 0;
      this.watchExit(p);
      this.watchProbation(p);
      handle.connections?.onLimit(() => this.checkRequestLimit(p));
      if (!this.inProbation(p)) this.rebalanceConnections(); // else once probation is over
      this.observer.spawned?.(p, { cause, durationMs: p.readyAt - p.spawnStartedAt });
      this.dispatch();
      this.maybeScale();
      return p;
    } catch (err) {
      if (p.state === 'spawning') this.forget(p);
      if (err instanceof SpawnError) this.spawnFailed(err, cause);
      else if (!(err instanceof Error && err.name === 'AbortError')) {
        // A spawner bug must not wedge the pool: treat it as an OS-level spawn error.
        this.spawnFailed(this.asSpawnError(err, generation), cause);
      }
      throw err;
    } finally {
      signal?.removeEventListener('abort', onOuterAbort);
      this.spawnAborts.delete(p);
    }
  }

  private asSpawnError(err: unknown, generation: number): SpawnError {
    return new SpawnError(`could not start the app: ${err instanceof Error ? err.message : String(err)}`, {
      category: 'os',
      errorId: newErrorId(),
      command: this.spawner.describeCommand(),
      exitCode: null,
      signal: null,
      outputTail: [],
      release: this.releases.get(generation) ?? this.options.appRoot,
      generation,
      at: this.clock.now(),
    });
  }

  /** The one place a spawn error takes effect (failed spawn, or death during probation). */
  private spawnFailed(error: SpawnError, cause: SpawnCause): void {
    this.lastSpawnError = error;
    this.consecutiveFailures++;
    this.backoffUntil = this.clock.now() + spawnBackoffMs(this.consecutiveFailures);
    if (this.options.resistDeploymentErrors && !this.closing) {
      this.observer.spawnFailed?.(error, { cause, resisting: true });
      if (!this.resistingState) {
        this.resistingState = { error, since: this.clock.now() };
        this.observer.resistingSet?.(error);
      }
    } else {
      this.observer.spawnFailed?.(error, { cause, resisting: false });
    }
    if (this.enabled().length === 0 && this.spawningCount() === 0) {
      // Nothing serves and nothing is coming: the waiting visitors get the error page.
      this.rejectWaiters(error);
    }
    this.scheduleRecovery();
  }

  /**
   * While resisting with nothing left, one spawn at a time with back-off, from the newest release
   * that ever passed probation (the old version), so the app is never left serving nothing.
   */
  private scheduleRecovery(): void {
    if (!this.resistingState || this.closing || this.recoveryTimer) return;
    if (this.enabled().length > 0 || this.spawningCount() > 0 || this.restartState) return;
    const delay = spawnBackoffMs(this.consecutiveFailures);
    this.recoveryTimer = this.clock.setTimeout(() => {
      this.recoveryTimer = undefined;
      if (!this.resistingState || this.closing || this.enabled().length > 0 || this.spawningCount() > 0 || this.restartState) return;
      // The old release first; after it failed too, whatever the app dir holds now.
      const useOld = this.lastGoodGeneration > 0 && this.consecutiveFailures % 2 === 1;
      const generation = useOld ? this.lastGoodGeneration : this.generation;
      this.spawnOne(generation, 'recovery').catch(() => undefined);
    }, delay);
  }

  private watchExit(p: AppProcess): void {
    void p.handle!.exited.then((exit) => this.onExit(p, exit));
  }

  private watchProbation(p: AppProcess): void {
    const timer = this.clock.setTimeout(() => {
      if (p.state === 'enabled' || p.state === 'draining') {
        if (p.generation > this.lastGoodGeneration) this.lastGoodGeneration = p.generation;
      }
      if (p.state === 'enabled') this.rebalanceConnections(); // it takes connections from now on
    }, this.options.probationMs);
    void p.handle!.exited.then(() => timer.cancel());
  }

  private inProbation(p: AppProcess): boolean {
    return this.clock.now() - p.readyAt < this.options.probationMs;
  }

  private onExit(p: AppProcess, exit: ExitInfo): void {
    if (p.state !== 'enabled') return; // a stop in progress owns draining/stopped processes
    const young = this.inProbation(p);
    this.forget(p);
    this.observer.processDied?.(p, exit);
    this.releaseDrainWaiters(p);
    // An old-generation process dying while resisting is part of the freeze, however young: put it
    // back from its own release so the freeze does not decay. Otherwise a young death is a failed spawn.
    const frozen = this.resistingState !== undefined && p.generation < this.generation;
    if (this.closing) {
      // nothing to replace
    } else if (young && !frozen) {
      this.spawnFailed(this.probationError(p, exit), this.restartState?.generation === p.generation ? 'restart' : 'demand');
    } else if (this.resistingState) {
      this.pendingReplacements.push(p.generation);
    }
    this.dispatch();
    this.maybeScale();
    this.scheduleRecovery();
  }

  private probationError(p: AppProcess, exit: ExitInfo): SpawnError {
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const oom = exit.signal === 'SIGKILL' ? ' (SIGKILL usually means the system ran out of memory)' : '';
    const secs = Math.round((this.clock.now() - p.readyAt) / 100) / 10;
    const details: SpawnErrorDetails = {
      category: 'probation',
      errorId: newErrorId(),
      command: this.spawner.describeCommand(),
      exitCode: exit.code,
      signal: exit.signal,
      outputTail: p.handle?.recentOutput?.() ?? [],
      release: p.handle?.release ?? this.options.appRoot,
      generation: p.generation,
      at: this.clock.now(),
    };
    return new SpawnError(`app process ${p.pid} ${how} ${secs} s after it became ready${oom}`, details);
  }

  /** Resolves undefined when the process survives probation, or its SpawnError when it dies first. */
  private probation(p: AppProcess): Promise<SpawnError | undefined> {
    const remaining = p.readyAt + this.options.probationMs - this.clock.now();
    if (p.state !== 'enabled' && p.state !== 'draining') return Promise.resolve(this.lastSpawnError ?? this.asSpawnError(new Error('process vanished'), p.generation));
    return new Promise((resolve) => {
      let settled = false;
      const timer = this.clock.setTimeout(() => {
        if (settled) return;
        settled = true;
        resolve(undefined);
      }, Math.max(0, remaining));
      void p.handle!.exited.then(() => {
        if (settled) return;
        settled = true;
        timer.cancel();
        // onExit ran first (it was attached first) and recorded the probation error.
        resolve(this.lastSpawnError);
      });
    });
  }

  // ---- stopping ---------------------------------------------------------------------------

  /** Drain (bounded by drain_timeout), then SIGTERM, then SIGKILL after the grace. Idempotent. */
  stopProcess(p: AppProcess, reason: StopReason): Promise<void> {
    if (p.stopping) return p.stopping;
    if (p.state === 'spawning') {
      this.spawnAborts.get(p)?.abort();
      return (this.spawnsInFlight.get(p) ?? Promise.resolve()).then(() => undefined);
    }
    if (p.state === 'stopped') return Promise.resolve();
    p.stopReason = reason;
    p.transition('draining');
    p.handle!.connections?.drain();
    this.observer.processDraining?.(p, reason);
    p.stopping = (async () => {
      await this.drained(p, this.options.drainTimeoutMs);
      const exit = await p.handle!.terminate(this.options.terminateGraceMs);
      this.forget(p);
      this.observer.processStopped?.(p, reason, exit);
      this.dispatch();
      this.maybeScale();
      this.scheduleRecovery();
    })();
    return p.stopping;
  }

  private drained(p: AppProcess, timeoutMs: number): Promise<void> {
    if (p.drained()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(finish, timeoutMs);
      const list = this.drainWaiters.get(p) ?? [];
      list.push(finish);
      this.drainWaiters.set(p, list);
      function finish() {
        timer.cancel();
        resolve();
      }
    });
  }

  private releaseDrainWaiters(p: AppProcess): void {
    const list = this.drainWaiters.get(p);
    this.drainWaiters.delete(p);
    for (const done of list ?? []) done();
  }

  /** Removes a process from the group (it is gone or being thrown away). */
  private forget(p: AppProcess): void {
    if (p.state !== 'stopped') p.transition('stopped');
    this.processes = this.processes.filter((x) => x !== p);
  }

  // ---- background checks ------------------------------------------------------------------

  private tick(): void {
    if (this.closing) return;
    if (!this.resistingState && !this.restartState) {
      const now = this.clock.now();
      const enabled = this.enabled();
      for (const p of enabled) {
        // Requests on handed-off connections are only seen as counts: activity is use.
        const taker = p.handle?.connections;
        if (!taker) continue;
        const served = taker.servedRequests();
        if (served !== p.lastServedSeen || taker.peakRequests() > 0) p.lastUsedAt = now;
        p.lastServedSeen = served;
        this.checkRequestLimit(p);
      }
      const idle = enabled.filter((p) => p.state === 'enabled').map((p) => ({ id: p.id, sessions: p.load(), lastUsedAt: p.lastUsedAt }));
      const ids = new Set(idleToClean(idle, now, this.options));
      for (const p of enabled) if (ids.has(p.id)) void this.stopProcess(p, 'idle');
    }
    this.dispatch();
    this.maybeScale();
  }

  private sampleUsage(): void {
    for (const p of this.processes) {
      if (!p.handle || p.state === 'stopped') continue;
      p.handle.sampleUsage().then(
        (u) => {
          p.rssBytes = u.rssBytes;
          p.cpuPercent = u.cpuPercent;
          // memory_limit applies even while resisting; the process is then not replaced.
          if (p.state === 'enabled' && recycleReason({ processed: 0, rssBytes: p.rssBytes }, this.options) === 'memory_limit') {
            void this.stopProcess(p, 'memory_limit');
          }
        },
        () => undefined, // the process is gone; its exit is handled elsewhere
      );
    }
  }

  // ---- restarts and resistance --------------------------------------------------------------

  restart(options: { rolling?: boolean } = {}): RestartTicket {
    const kind: RestartKind = (options.rolling ?? this.options.rollingRestarts) ? 'rolling' : 'plain';
    const listeners: Array<(p: RestartProgress) => void> = [];
    if (this.closing) {
      const outcome: RestartOutcome = { outcome: 'superseded', kind, generation: this.generation, replaced: 0, total: 0, error: null };
      return { onProgress: () => undefined, done: Promise.resolve(outcome) };
    }
    const previous = this.restartState;
    previous?.abort.abort();
    const generation = ++this.generation;
    if (this.resistingState) {
      // A new deploy is the administrator acting: try again.
      this.resistingState = undefined;
      this.observer.resistingCleared?.('restart');
    }
    this.consecutiveFailures = 0;
    this.backoffUntil = 0;
    this.pendingReplacements = [];
    this.recoveryTimer?.cancel();
    this.recoveryTimer = undefined;
    // Spawns of older generations still in flight are outdated now.
    for (const p of this.processes) if (p.state === 'spawning' && p.generation < generation) this.spawnAborts.get(p)?.abort();
    const abort = new AbortController();
    const state: ActiveRestart = { kind, generation, startedAt: this.clock.now(), total: 0, replaced: 0, abort, done: undefined as unknown as Promise<RestartOutcome> };
    this.restartState = state;
    const onProgress = (progress: RestartProgress) => {
      state.total = progress.total;
      state.replaced = progress.replaced;
      this.observer.restartProgress?.(progress);
      for (const l of listeners) l(progress);
    };
    state.done = (async () => {
      if (previous) await previous.done; // never interleave with the superseded one
      this.observer.restartStarted?.({ kind, generation });
      const result = abort.signal.aborted
        ? { outcome: 'superseded' as const, replaced: 0, total: 0, error: undefined }
        : await runRestart(this.restartHost(), { kind, generation, signal: abort.signal, onProgress });
      if (this.restartState === state) this.restartState = undefined;
      const outcome: RestartOutcome = {
        outcome: result.outcome,
        kind,
        generation,
        replaced: result.replaced,
        total: result.total,
        error: result.error ? spawnErrorSnapshot(result.error) : null,
      };
      this.lastRestart = { kind, generation, outcome: result.outcome, finished_at: new Date(this.clock.now()).toISOString(), error: outcome.error };
      if (result.outcome === 'failed' && this.enabled().length === 0 && result.error) this.rejectWaiters(result.error);
      this.observer.restartFinished?.(outcome);
      this.dispatch();
      this.maybeScale();
      this.scheduleRecovery();
      return outcome;
    })();
    return {
      onProgress: (l) => {
        listeners.push(l);
      },
      done: state.done,
    };
  }

  private restartHost(): RestartHost {
    return {
      minInstances: this.options.minInstances,
      oldProcesses: (generation) => this.processes.filter((p) => p.generation < generation && p.state === 'enabled'),
      currentProcesses: (generation) => this.processes.filter((p) => p.generation === generation && (p.state === 'enabled' || p.state === 'spawning')),
      spawnFor: (generation, signal) => this.spawnOne(generation, 'restart', signal),
      probation: (p) => this.probation(p),
      stop: (p) => this.stopProcess(p, 'restart'),
      hasRoom: () => this.liveCount() < this.options.maxPoolSize && this.poolRoom.room() > 0,
      resisting: () => this.resistingState !== undefined,
    };
  }

  /** Clears the resisting flag without a restart (the cause was passing, such as memory). */
  resume(): { was_resisting: boolean } {
    const was = this.resistingState !== undefined;
    if (was) {
      this.resistingState = undefined;
      this.consecutiveFailures = 0;
      this.backoffUntil = 0;
      this.observer.resistingCleared?.('resume');
    }
    this.pendingReplacements = [];
    this.dispatch();
    this.maybeScale();
    return { was_resisting: was };
  }

  get resisting(): boolean {
    return this.resistingState !== undefined;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  /** Stop taking work, drain and stop every process. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    for (const t of this.timers) t.cancel();
    this.recoveryTimer?.cancel();
    this.restartState?.abort.abort();
    this.rejectWaiters(new CapacityError('HF_SHUTTING_DOWN', 'holdfast is stopping'));
    this.closed = (async () => {
      for (const abort of this.spawnAborts.values()) abort.abort();
      // Aborted spawns settle first (their process is thrown away), then everything left drains.
      await Promise.all(this.spawnsInFlight.values());
      await Promise.all(this.processes.map((p) => this.stopProcess(p, 'shutdown')));
    })();
    return this.closed;
  }

  // ---- views ------------------------------------------------------------------------------

  private enabled(): AppProcess[] {
    return this.processes.filter((p) => p.state === 'enabled');
  }

  private spawningCount(): number {
    return this.processes.filter((p) => p.state === 'spawning').length;
  }

  /** Processes that count against max_pool_size. */
  liveCount(): number {
    return this.processes.length;
  }

  queueLength(): number {
    return this.waiters.length;
  }

  /** Live processes, for the supervisor (proxy keep-alive, metrics). */
  list(): readonly AppProcess[] {
    return this.processes;
  }

  snapshot(): GroupSnapshot {
    const now = this.clock.now();
    const r = this.restartState;
    const restart: RestartSnapshot | null = r
      ? { kind: r.kind, generation: r.generation, total: r.total, replaced: r.replaced, started_at: new Date(r.startedAt).toISOString() }
      : null;
    return {
      name: this.options.name,
      app_root: this.options.appRoot,
      // The version that serves now; a failed restart's generation shows in restart/last_restart.
      generation: this.servingGeneration(),
      environment: this.options.environment,
      rolling_restarts: this.options.rollingRestarts,
      resist_deployment_errors: this.options.resistDeploymentErrors,
      restart,
      last_restart: this.lastRestart ?? null,
      resisting_deployment_error: this.resistingState
        ? {
            since: new Date(this.resistingState.since).toISOString(),
            for_seconds: Math.floor((now - this.resistingState.since) / 1000),
            error: spawnErrorSnapshot(this.resistingState.error),
          }
        : null,
      last_spawn_error: this.lastSpawnError ? spawnErrorSnapshot(this.lastSpawnError) : null,
      requests_in_queue: this.waiters.length,
      spawning: this.spawningCount(),
      processes: this.processes.filter((p) => p.state !== 'spawning').map((p) => processSnapshot(p, now, p.state === 'enabled' && this.inProbation(p))),
    };
  }

  /** The newest generation with a serving process; the newest attempted when none serves. */
  private servingGeneration(): number {
    const serving = this.enabled().map((p) => p.generation);
    return serving.length > 0 ? Math.max(...serving) : this.generation;
  }

  verifyInvariants(): void {
    const fail = (what: string) => {
      throw new Error(`Group ${this.options.name}: invariant broken: ${what}`);
    };
    for (const p of this.processes) {
      if (p.state === 'stopped') fail(`stopped process #${p.id} still listed`);
      if (p.sessions < 0) fail(`process #${p.id} has ${p.sessions} sessions`);
      if (p.connections < 0) fail(`process #${p.id} has ${p.connections} connections`);
      if (p.state === 'spawning' && (p.handle || p.sessions !== 0)) fail(`spawning process #${p.id} has a handle or sessions`);
      if (p.state !== 'spawning' && !p.handle) fail(`process #${p.id} is ${p.state} without a handle`);
    }
    if (this.spawningCount() > 1) fail(`${this.spawningCount()} spawns at once`);
    if (this.waiters.length > 0 && !this.closing && this.route(undefined) && this.waiters.every((w) => w.avoidPid === undefined)) {
      fail('requests wait while a process could take them');
    }
    if (this.liveCount() > this.options.maxPoolSize) fail(`${this.liveCount()} processes > max_pool_size ${this.options.maxPoolSize}`);
  }
}

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

function processSnapshot(p: AppProcess, now: number, inProbation: boolean): ProcessSnapshot {
  return {
    pid: p.pid,
    generation: p.generation,
    state: p.state,
    in_probation: inProbation,
    sessions: p.load(),
    processed: p.requestsServed(),
    connections: p.connections,
    started_at: new Date(p.readyAt || p.spawnStartedAt).toISOString(),
    uptime_seconds: p.readyAt ? Math.floor((now - p.readyAt) / 1000) : 0,
    cpu_percent: Math.round(p.cpuPercent * 10) / 10,
    rss_bytes: p.rssBytes,
    // lastUsedAt starts at readiness (for least-recently-used ties); a process that never had a session was never used.
    last_used_at: p.requestsSeen() > 0 ? new Date(p.lastUsedAt).toISOString() : null,
    release: p.handle?.release ?? '',
    commit: p.handle?.commit ?? null,
  };
}
