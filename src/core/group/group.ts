// One app: its processes, the wait queue, the generation, restarts and deployment error resistance.
// This file is the table of contents: it owns the state, synchronously, and delegates each concern
// to its module, as Passenger splits its Group:
//   wait-queue.ts            requests waiting for a session
//   process-list.ts          the processes, their states, drain waits
//   spawning.ts              starting processes, aborting outdated spawns
//   restart-coordinator.ts   the one active restart, supersede chain, deadline, outcome
//   restart-steps.ts         the plain and rolling restart procedures
//   resistance.ts            may we spawn / idle-clean / recycle, and what a failure or death means
//   handoff.ts               whole connections on the hand-off path
//   maintenance.ts           tick: use on handed-off connections, max_requests, idle cleaning, memory
//   inspection.ts            snapshots for status
//   verification.ts          the invariants, checked after every change in self-check mode
//
// Invariants (verification.ts checks them after every change when HOLDFAST_VERIFY_INVARIANTS=1):
// - the process list holds no stopped process; a spawning process has no handle and no sessions;
// - at most one process spawns at a time (a restart waits for the spawns it aborted to settle);
// - sessions and connections are never negative; only an enabled process gets new sessions;
// - requests wait in the queue only while no process can take them;
// - at most max_pool_size processes live, plus rolling_restart_surge during a restart or rollback;
// - while resisting, the only spawns are replacements from a release that served, rollback steps
//   and one recovery at a time with back-off when nothing at all is left.
// Every change ends in reconsider(): dispatch the queue, plan the next spawn, verify.

import { CapacityError, SpawnError } from '../../errors';
import type { HoldfastError } from '../../errors';
import type { AppProcess, RequestInfo, SpawnCause, StopReason } from '../app-process';
import type { Clock, TimerHandle } from '../clock';
import type { ConnectionLease, ConnectionSource, AcquireOptions, Session, SessionSource } from '../leases';
import type { RestartOutcome, RestartProgress, RestartTicket } from '../operations';
import type { RestartKind } from '../snapshots';
import type { ExitInfo, ProcessHandle } from '../process-handle';
import { pickProcess } from '../routing';
import type { RoutableProcess } from '../routing';
import { spawnDecision } from '../scaling';
import type { ScalingOptions } from '../scaling';
import type { GroupSnapshot } from '../snapshots';
import type { Spawner } from '../spawner';
import { Handoff } from './handoff';
import { processSnapshot, spawnErrorSnapshot } from './inspection';
import { Maintenance } from './maintenance';
import { ProcessList } from './process-list';
import { Resistance } from './resistance';
import { RestartCoordinator } from './restart-coordinator';
import type { RestartHost, RestartResult } from './restart-steps';
import { Spawning } from './spawning';
import { VERIFY_INVARIANTS, verifyInvariants } from './verification';
import { WaitQueue, abortError } from './wait-queue';

export interface GroupOptions extends ScalingOptions {
  name: string;
  appRoot: string;
  environment: string;
  /** 0 = unbounded. */
  maxRequestQueueSize: number;
  drainTimeoutMs: number;
  /** Between SIGTERM and SIGKILL. */
  terminateGraceMs: number;
  /** The longest one spawn may take: start_timeout, plus the health check where there is one. */
  spawnTimeoutMs: number;
  rollingRestarts: boolean;
  /** Processes a rolling restart may run above max_pool_size for one replacement (0 = retire first). */
  rollingRestartSurge: number;
  resistDeploymentErrors: boolean;
  /** A process that exits this soon after becoming ready counts as a failed spawn. */
  probationMs: number;
  /** How often RSS and CPU are sampled (memory_limit). */
  usageSampleIntervalMs: number;
  /** How often idle cleaning and scaling are reconsidered without traffic. */
  tickIntervalMs: number;
}

/** What the group tells the outside world; the supervisor composes observers for logs and metrics. */
export interface GroupObserver {
  spawnStarted?(info: { generation: number; cause: SpawnCause; release: string | undefined }): void;
  spawned?(process: AppProcess, info: { cause: SpawnCause; durationMs: number }): void;
  spawnFailed?(error: SpawnError, info: { cause: SpawnCause; resisting: boolean }): void;
  processDraining?(process: AppProcess, reason: StopReason): void;
  processStopped?(process: AppProcess, reason: StopReason, exit: ExitInfo): void;
  /** crash: it died while serving requests it had received (logged with them, replaced, never a spawn error). */
  processDied?(process: AppProcess, exit: ExitInfo, crash?: { requests: readonly RequestInfo[] }): void;
  resistingSet?(error: SpawnError): void;
  resistingCleared?(why: 'restart' | 'resume'): void;
  restartStarted?(info: { kind: RestartKind; generation: number; deadlineMs: number }): void;
  restartProgress?(progress: RestartProgress): void;
  restartFinished?(outcome: RestartOutcome): void;
}

/** The pool's say on how many more processes may start (max_pool_size across all groups). */
export interface PoolRoom {
  room(): number;
}

/** A restart gives up after this margin on top of what its steps may take. */
const RESTART_DEADLINE_MARGIN_MS = 30_000;

export class Group implements SessionSource, ConnectionSource {
  readonly options: GroupOptions;
  private readonly clock: Clock;
  private readonly observer: GroupObserver;
  private readonly poolRoom: PoolRoom;
  private readonly processes: ProcessList;
  private readonly queue = new WaitQueue();
  private readonly resistance: Resistance;
  private readonly restarts: RestartCoordinator;
  private readonly spawning: Spawning;
  private readonly handoff: Handoff;
  private readonly maintenance: Maintenance;
  /** The newest generation; every restart raises it. */
  private generation = 1;
  /** Some process of this group has ever become ready (a first start that never gets there fails). */
  private everReady = false;
  private closing = false;
  /** start() spawns min_instances itself, one after another. */
  private starting = false;
  private closed: Promise<void> | undefined;
  private readonly timers: TimerHandle[] = [];

  constructor(options: GroupOptions, deps: { spawner: Spawner; clock: Clock; observer?: GroupObserver; poolRoom?: PoolRoom }) {
    this.options = options;
    this.clock = deps.clock;
    this.observer = deps.observer ?? {};
    this.poolRoom = deps.poolRoom ?? { room: () => this.options.maxPoolSize - this.liveCount() };
    this.processes = new ProcessList(this.clock);
    this.resistance = new Resistance(options, this.clock);
    this.spawning = new Spawning(deps.spawner, this.processes, this.clock, {
      closing: () => this.closing,
      outdated: (generation, cause) => this.outdated(generation, cause),
      releaseOf: (generation) => this.resistance.releaseOf(generation),
      started: (info) => this.observer.spawnStarted?.(info),
      ready: (p, cause) => this.processReady(p, cause),
      failed: (error, cause) => this.spawnFailed(error, cause),
      discard: (handle: ProcessHandle) => void handle.terminate(this.options.terminateGraceMs),
    }, options.appRoot);
    this.restarts = new RestartCoordinator({
      closing: () => this.closing,
      currentGeneration: () => this.generation,
      begin: (generation) => this.restartBegan(generation),
      olderSpawnsSettled: (generation) => this.spawning.abortOlderThan(generation),
      steps: () => this.restartSteps(),
      deadlineMs: (total) => total * (options.spawnTimeoutMs + options.probationMs + options.drainTimeoutMs + options.terminateGraceMs) + RESTART_DEADLINE_MARGIN_MS,
      command: () => this.spawning.describeCommand(),
      appRoot: () => options.appRoot,
      finished: (result, generation) => this.restartFinished(result, generation),
      started: (info) => this.observer.restartStarted?.(info),
      progressed: (progress) => this.observer.restartProgress?.(progress),
      ended: (outcome) => this.observer.restartFinished?.(outcome),
    }, this.clock);
    this.handoff = new Handoff({
      target: () => this.connectionTarget(),
      now: () => this.clock.now(),
      inProbation: (p) => this.inProbation(p),
      enabled: () => this.processes.enabled(),
      ended: (p) => this.processes.released(p),
      leased: () => this.reconsider(),
    });
    this.maintenance = new Maintenance({
      options,
      now: () => this.clock.now(),
      enabled: () => this.processes.enabled(),
      all: () => this.processes.all(),
      mayIdleClean: () => this.resistance.mayIdleClean() && !this.restarts.running,
      mayRecycle: () => this.resistance.mayRecycle(),
      stop: (p, reason) => void this.stopProcess(p, reason),
    });
  }

  get name(): string {
    return this.options.name;
  }

  /**
   * Spawns min_instances processes one after another, then starts the background checks. See
   * startFailure() for a first start where no process could become ready.
   */
  async start(): Promise<void> {
    this.timers.push(this.clock.setInterval(() => this.tick(), this.options.tickIntervalMs));
    this.timers.push(this.clock.setInterval(() => this.maintenance.sampleUsage(), this.options.usageSampleIntervalMs));
    this.starting = true;
    try {
      for (let i = 0; i < this.options.minInstances && !this.closing && !this.resistance.resisting; i++) {
        try {
          await this.spawning.spawn(this.generation, 'start');
        } catch {
          break; // recorded by spawnFailed; requests see the error page or the resisting pool

        }
      }
    } finally {
      this.starting = false;
    }
    this.reconsider();
  }

  /** The spawn error of a first start where no process has ever become ready: then holdfast does not serve. */
  startFailure(): SpawnError | undefined {
    return this.everReady ? undefined : this.resistance.lastSpawnError;
  }

  /** Whether a process serves now (the readiness endpoint). */
  ready(): boolean {
    return this.processes.enabled().length > 0;
  }

  // ---- sessions (the proxy path) ------------------------------------------------------------

  /**
   * A session at once when a process can take one and nobody waits before us; undefined when the
   * request would have to queue (or be refused): then acquire() decides. No promise, no timer.
   */
  tryAcquire(avoidPid?: number, request?: RequestInfo): Session | undefined {
    if (this.closing || this.queue.length > 0) return undefined;
    const p = this.route(avoidPid);
    if (!p) return undefined;
    const session = this.openSession(p, request);
    this.reconsider();
    return session;
  }

  acquire(options: AcquireOptions = {}): Promise<Session> {
    if (this.closing) return Promise.reject(new CapacityError('HF_SHUTTING_DOWN', 'holdfast is stopping'));
    if (options.signal?.aborted) return Promise.reject(abortError());
    const session = this.tryAcquire(options.avoidPid, options.request);
    if (session) return Promise.resolve(session);
    // Nothing can take it now: fail fast when nothing will be able to either.
    const hopeless = this.hopelessError();
    if (hopeless) return Promise.reject(hopeless);
    if (this.options.maxRequestQueueSize > 0 && this.queue.length >= this.options.maxRequestQueueSize) {
      return Promise.reject(new CapacityError('HF_QUEUE_FULL', `the request queue is full (${this.options.maxRequestQueueSize} waiting)`));
    }
    return new Promise<Session>((resolve, reject) => {
      this.queue.enqueue({ avoidPid: options.avoidPid, request: options.request, resolve, reject }, options.signal);
      this.reconsider();
    });
  }

  /** The error a new request gets at once because no process runs and none is on its way. */
  private hopelessError(): HoldfastError | undefined {
    if (this.processes.enabled().length > 0 || this.processes.spawningCount() > 0 || this.restarts.running) return undefined;
    if (this.processes.anyDraining()) return undefined;
    return this.resistance.hopelessError();
  }

  private route(avoidPid: number | undefined): AppProcess | undefined {
    return this.pick(() => true, (p) => p.requests.open, avoidPid);
  }

  /**
   * The least busy of the enabled processes that `admits`, by pickProcess: `count` is what "fewest"
   * compares (sessions for a request, connections for a connection). A broken generation is never preferred.
   */
  private pick(admits: (p: AppProcess) => boolean, count: (p: AppProcess) => number, avoidPid: number | undefined): AppProcess | undefined {
    const now = this.clock.now();
    const limits = { concurrency: this.options.concurrency, maxRequests: this.resistance.mayRecycle() ? this.options.maxRequests : 0 };
    const views: Array<RoutableProcess & { process: AppProcess }> = [];
    for (const p of this.processes.all()) {
      if (p.state !== 'enabled' || !admits(p)) continue;
      views.push({
        process: p,
        pid: p.pid,
        generation: this.resistance.isBroken(p.generation) ? 0 : p.generation,
        sessions: count(p),
        lastUsedAt: p.lastUsedAt,
        available: p.takesSession(now, limits),
        busy: p.isBusy(this.options),
      });
    }
    return pickProcess(views, avoidPid)?.process;
  }

  private openSession(p: AppProcess, request: RequestInfo | undefined): Session {
    p.openSession(this.clock.now(), request);
    let open = true;
    return {
      pid: p.pid,
      generation: p.generation,
      target: p.target,
      close: (outcome) => {
        if (!open) return;
        open = false;
        p.closeSession(this.clock.now(), request, outcome?.unreachable === true);
        this.processes.released(p);
        // Only max_requests is decided per request; memory_limit is decided where RSS is sampled.
        this.maintenance.checkRequestLimit(p);
        this.reconsider();
      },
    };
  }

  // ---- connections (the hand-off path) ------------------------------------------------------

  /** A whole visitor connection for the least busy process that takes them (see handoff.ts). */
  tryAcquireConnection(): ConnectionLease | undefined {
    return this.handoff.tryAcquire();
  }

  /** Whether a connection arriving now would be handed off (the proxy then closes its own connections after their answer, so they come back and are). */
  takesConnectionsNow(): boolean {
    return this.connectionTarget() !== undefined;
  }

  /**
   * Where a connection would go now. A process in probation takes none: if it crashes (a version
   * that dies right after booting), the requests the proxy gave it are retried elsewhere, while a
   * handed-off connection's request would be lost with it. A queue or a concurrency limit needs
   * per-request control: then the proxy takes the connection.
   */
  private connectionTarget(): AppProcess | undefined {
    if (this.closing || this.queue.length > 0 || this.options.concurrency > 0) return undefined;
    return this.pick((p) => this.handoff.takes(p), (p) => p.connectionCount, undefined);
  }

  /** Asks every process on the hand-off path for its latest request counts (metrics read them). */
  flushHandedOff(): Promise<void> {
    return this.handoff.flush(this.processes.all());
  }

  // ---- spawning -----------------------------------------------------------------------------

  /** After every change: hand queued requests out, plan the next spawn, check the invariants. */
  private reconsider(): void {
    this.queue.dispatch((w) => {
      const p = this.route(w.avoidPid);
      return p ? this.openSession(p, w.request) : undefined;
    });
    if (!this.closing && !this.starting) this.planSpawn();
    if (VERIFY_INVARIANTS) this.verifyInvariants();
  }

  private planSpawn(): void {
    // Called twice per request: count in one pass, allocate nothing, and stop early when a spawn
    // is out of the question anyway.
    let enabled = 0;
    let spawning = 0;
    let busyEnabled = 0;
    let healthy = 0;
    const now = this.clock.now();
    const limits = { concurrency: this.options.concurrency, maxRequests: this.resistance.mayRecycle() ? this.options.maxRequests : 0 };
    for (const p of this.processes.all()) {
      if (p.state === 'spawning') spawning++;
      else if (p.state === 'enabled') {
        enabled++;
        if (!p.takesSession(now, limits) || p.isBusy(this.options)) busyEnabled++;
      }
      if (p.state !== 'draining' && !this.resistance.isBroken(p.generation)) healthy++;
    }
    if (spawning > 0) return;
    if (this.resistance.resisting) {
      const view = { enabled, spawning, restarting: this.restarts.running, healthy, room: this.hasRoom(this.options.rollingRestartSurge) };
      const plan = this.resistance.plan(view, this.generation, () => this.reconsider());
      if (plan) this.spawnInBackground(plan.generation, plan.cause);
      return;
    }
    if (this.restarts.running || this.resistance.backingOff()) return;
    const decision = spawnDecision(
      { live: this.liveCount(), enabled, spawning, busyEnabled, waiting: this.queue.length, poolRoom: this.poolRoom.room(), resisting: false, restarting: false, backingOff: false },
      this.options,
    );
    if (decision === 'spawn') this.spawnInBackground(this.resistance.generationFor('demand', this.generation), enabled < this.options.minInstances ? 'replace' : 'demand');
  }

  private spawnInBackground(generation: number, cause: SpawnCause): void {
    this.spawning.spawn(generation, cause).catch(() => undefined); // a failure is handled by spawnFailed
  }

  /** Whether one more process fits, allowing `surge` above max_pool_size. */
  private hasRoom(surge: number): boolean {
    return this.liveCount() < this.options.maxPoolSize + surge && this.poolRoom.room() + surge > 0;
  }

  private outdated(generation: number, cause: SpawnCause): boolean {
    if (cause === 'restart') return generation < this.generation;
    if (cause === 'start' || cause === 'demand') return generation < this.resistance.generationFor('demand', this.generation);
    return false; // replacements, rollbacks and recoveries start from an older release on purpose
  }

  private processReady(p: AppProcess, cause: SpawnCause): void {
    const handle = p.handle!;
    this.everReady = true;
    this.resistance.rememberRelease(p.generation, handle.release);
    this.resistance.spawnSucceeded();
    void handle.exited.then((exit) => this.onExit(p, exit));
    this.watchProbation(p);
    handle.connectionTaker?.onLimit(() => this.maintenance.checkRequestLimit(p));
    if (!this.inProbation(p)) this.handoff.rebalance(); // else once probation is over
    this.observer.spawned?.(p, { cause, durationMs: p.readyAt - p.spawnStartedAt });
    // A rollback step replaces one process of the broken version, if any is left.
    if (cause === 'rollback') {
      const broken = this.processes.enabled().find((x) => this.resistance.isBroken(x.generation));
      if (broken) void this.stopProcess(broken, 'rollback');
    }
    this.reconsider();
  }

  /** The one place a failed spawn takes effect (a failed spawn, or a death in probation). */
  private spawnFailed(error: SpawnError, cause: SpawnCause): void {
    const set = this.resistance.spawnFailed(error, this.closing);
    this.observer.spawnFailed?.(error, { cause, resisting: this.resistance.resisting });
    if (set) this.observer.resistingSet?.(error);
    this.failWaitersIfNothingServes(error);
    this.reconsider();
  }

  /** A new version failed after it booted: stop its restart where it is, freeze, bring capacity back. */
  private deploymentFailed(error: SpawnError): void {
    const set = this.resistance.deploymentError(error, this.closing);
    this.observer.spawnFailed?.(error, { cause: 'restart', resisting: this.resistance.resisting });
    if (set) this.observer.resistingSet?.(error);
    if (this.restarts.running) this.restarts.abort(error);
    else this.resistance.restartResisted(Math.max(this.options.minInstances, this.processes.liveCount + 1));
    this.failWaitersIfNothingServes(error);
  }

  private failWaitersIfNothingServes(error: SpawnError): void {
    // Nothing serves and nothing is coming: the waiting visitors get the error page.
    if (this.processes.enabled().length === 0 && this.processes.spawningCount() === 0) this.queue.rejectAll(error);
  }

  private watchProbation(p: AppProcess): void {
    const timer = this.clock.setTimeout(() => {
      if (p.state === 'enabled' || p.state === 'draining') this.resistance.passedProbation(p);
      if (p.state === 'enabled') this.handoff.rebalance(); // it takes connections from now on
    }, this.options.probationMs);
    void p.handle!.exited.then(() => timer.cancel());
  }

  private inProbation(p: AppProcess): boolean {
    return p.inProbation(this.clock.now(), this.options.probationMs);
  }

  private onExit(p: AppProcess, exit: ExitInfo): void {
    if (p.state !== 'enabled') return; // a stop in progress owns draining/stopped processes
    if (this.closing) {
      this.processes.detach(p);
      this.observer.processDied?.(p, exit);
      return;
    }
    const verdict = this.resistance.judgeDeath(p, { exit, restartGeneration: this.restarts.generation, newestGeneration: this.generation, command: this.spawning.describeCommand() });
    this.processes.detach(p);
    this.observer.processDied?.(p, exit, verdict.kind === 'crash' ? { requests: verdict.requests } : undefined);
    if (verdict.kind === 'spawn_error') this.spawnFailed(verdict.error, p.cause);
    else if (verdict.kind === 'deployment_error') this.deploymentFailed(verdict.error);
    this.reconsider();
  }

  /** Resolves undefined when the process survives probation, or its SpawnError when it dies first. */
  private probation(p: AppProcess): Promise<SpawnError | undefined> {
    const remaining = p.readyAt + this.options.probationMs - this.clock.now();
    if (p.state !== 'enabled' && p.state !== 'draining') return Promise.resolve(this.resistance.lastSpawnError ?? this.spawning.asSpawnError(new Error('process vanished'), p.generation));
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
        // onExit ran first (it was attached first) and recorded the error.
        resolve(this.resistance.lastSpawnError);
      });
    });
  }

  // ---- stopping -----------------------------------------------------------------------------

  /** Drain (bounded by drain_timeout), then SIGTERM, then SIGKILL after the grace. Idempotent. */
  stopProcess(p: AppProcess, reason: StopReason): Promise<void> {
    if (p.stopping) return p.stopping;
    if (p.state === 'spawning') return this.spawning.abort(p);
    if (p.state === 'stopped') return Promise.resolve();
    p.transition('draining');
    p.handle!.connectionTaker?.drain();
    this.observer.processDraining?.(p, reason);
    p.stopping = (async () => {
      await this.processes.waitDrained(p, this.options.drainTimeoutMs);
      const exit = await p.handle!.terminate(this.options.terminateGraceMs);
      this.processes.detach(p);
      this.observer.processStopped?.(p, reason, exit);
      this.reconsider();
    })();
    return p.stopping;
  }

  private tick(): void {
    if (this.closing) return;
    // Kept-alive connections stay where they were handed: spread them again whenever they are
    // uneven, so that no process sits idle (and is idle-cleaned) while others are busy.
    this.handoff.rebalance();
    this.maintenance.tick();
    this.reconsider();
  }

  // ---- restarts and resistance ----------------------------------------------------------------

  restart(options: { rolling?: boolean } = {}): RestartTicket {
    const kind: RestartKind = (options.rolling ?? this.options.rollingRestarts) ? 'rolling' : 'plain';
    return this.restarts.start(kind);
  }

  private restartBegan(generation: number): void {
    this.generation = generation;
    // A new deploy is the administrator acting: try again.
    if (this.resistance.restartBegan()) this.observer.resistingCleared?.('restart');
    void this.spawning.abortOlderThan(generation); // spawns of older generations are outdated now
  }

  private restartSteps(): RestartHost {
    return {
      minInstances: this.options.minInstances,
      oldProcesses: (generation) => this.processes.all().filter((p) => p.generation < generation && p.state === 'enabled'),
      currentProcesses: (generation) => this.processes.all().filter((p) => p.generation === generation && (p.state === 'enabled' || p.state === 'spawning')),
      spawnFor: (generation, signal) => this.spawning.spawn(generation, 'restart', signal),
      probation: (p) => this.probation(p),
      stop: (p) => this.stopProcess(p, 'restart'),
      hasRoom: () => this.hasRoom(this.options.rollingRestartSurge),
      resisting: () => this.resistance.resisting,
    };
  }

  private restartFinished(result: RestartResult, generation: number): void {
    if (result.outcome === 'succeeded') this.resistance.restartSucceeded(generation);
    else if (result.outcome === 'resisted') this.resistance.restartResisted(result.total);
    else if (result.outcome === 'failed' && this.processes.enabled().length === 0 && result.error) this.queue.rejectAll(result.error);
    this.reconsider();
  }

  /** Clears the resisting flag without a restart (the cause was passing, such as memory). */
  resume(): { was_resisting: boolean } {
    const was = this.resistance.resume();
    if (was) this.observer.resistingCleared?.('resume');
    this.reconsider();
    return { was_resisting: was };
  }

  get resisting(): boolean {
    return this.resistance.resisting;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  /** Stop taking work, drain and stop every process. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    for (const t of this.timers) t.cancel();
    this.resistance.cancelRecovery();
    this.restarts.abort();
    this.queue.rejectAll(new CapacityError('HF_SHUTTING_DOWN', 'holdfast is stopping'));
    this.closed = (async () => {
      // Aborted spawns settle first (their process is thrown away), then everything left drains.
      await this.spawning.abortAll();
      await Promise.all(this.processes.all().map((p) => this.stopProcess(p, 'shutdown')));
    })();
    return this.closed;
  }

  // ---- inspection and verification ----------------------------------------------------------

  /** Processes that count against max_pool_size. */
  liveCount(): number {
    return this.processes.liveCount;
  }

  queueLength(): number {
    return this.queue.length;
  }

  /** Live processes, for the supervisor's observers and metrics. */
  liveProcesses(): readonly AppProcess[] {
    return this.processes.all();
  }

  snapshot(): GroupSnapshot {
    const now = this.clock.now();
    const enabled = this.processes.enabled();
    const serving = enabled.filter((p) => !this.resistance.isBroken(p.generation)).length;
    return {
      name: this.options.name,
      app_root: this.options.appRoot,
      // The version that serves now; a failed restart's generation shows in restart/last_restart.
      generation: enabled.length > 0 ? Math.max(...enabled.map((p) => p.generation)) : this.generation,
      environment: this.options.environment,
      rolling_restarts: this.options.rollingRestarts,
      resist_deployment_errors: this.options.resistDeploymentErrors,
      restart: this.restarts.snapshot(),
      last_restart: this.restarts.lastSnapshot(),
      resisting_deployment_error: this.resistance.snapshot(serving),
      last_spawn_error: this.resistance.lastSpawnError ? spawnErrorSnapshot(this.resistance.lastSpawnError) : null,
      ever_served: this.everReady,
      requests_in_queue: this.queue.length,
      spawning: this.processes.spawningCount(),
      processes: this.processes.all().filter((p) => p.state !== 'spawning').map((p) => processSnapshot(p, now, this.options.probationMs)),
    };
  }

  verifyInvariants(): void {
    const restarting = this.restarts.running;
    verifyInvariants({
      name: this.options.name,
      processes: this.processes.all(),
      maxPoolSize: this.options.maxPoolSize,
      surge: restarting || this.resistance.resisting ? this.options.rollingRestartSurge : 0,
      waiting: this.queue.length,
      waitersAvoidNoPid: this.queue.noneAvoids(),
      closing: this.closing,
      sessionAvailable: this.route(undefined) !== undefined,
      resisting: this.resistance.resisting,
    });
  }
}

