// One app: its processes, the wait queue, the generation, restarts and deployment error resistance.
// This file is the table of contents: Group owns the state, synchronously, and delegates each
// concern to its module, as Passenger splits its Group:
//   context.ts               options, observer, and what the parts share
//   wait-queue.ts            requests waiting for a session
//   sessions.ts              routing a request, the queue, the end of a session
//   process-list.ts          the processes, their states, drain waits
//   spawning.ts              starting processes, aborting outdated spawns
//   lifecycle.ts             ready, probation, death and what it means, stopping
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

import { CapacityError } from '../../errors';
import type { SpawnError } from '../../errors';
import type { AppProcess, RequestInfo, StopReason } from '../app-process';
import type { Clock, TimerHandle } from '../clock';
import type { AcquireOptions, ConnectionLease, ConnectionSource, Session, SessionSource } from '../leases';
import type { RestartTicket } from '../operations';
import type { ProcessHandle } from '../process-handle';
import type { GroupSnapshot, RestartKind } from '../snapshots';
import type { Spawner } from '../spawner';
import type { GroupContext, GroupObserver, GroupOptions, PoolRoomLike } from './context';
import { Handoff } from './handoff';
import { processSnapshot, resistingSnapshot, spawnErrorSnapshot } from './inspection';
import { Lifecycle } from './lifecycle';
import { Maintenance } from './maintenance';
import { SpawnPlanner } from './planner';
import { ProcessList } from './process-list';
import { Resistance } from './resistance';
import { RestartCoordinator } from './restart-coordinator';
import type { RestartHost, RestartResult } from './restart-steps';
import { Sessions } from './sessions';
import { Spawning } from './spawning';
import { VERIFY_INVARIANTS, verifyInvariants } from './verification';
import { WaitQueue } from './wait-queue';

export type { GroupObserver, GroupOptions } from './context';

/** The pool's say on how many more processes may start (max_pool_size across all groups). */
export type PoolRoom = PoolRoomLike;

/** A restart gives up after this margin on top of what its steps may take. */
const RESTART_DEADLINE_MARGIN_MS = 30_000;

export class Group implements SessionSource, ConnectionSource {
  readonly options: GroupOptions;
  private readonly clock: Clock;
  private readonly poolRoom: PoolRoom;
  private readonly ctx: GroupContext;
  private readonly processes: ProcessList;
  private readonly queue = new WaitQueue();
  private readonly resistance: Resistance;
  private readonly sessions: Sessions;
  private readonly lifecycle: Lifecycle;
  private readonly restarts: RestartCoordinator;
  private readonly spawning: Spawning;
  private readonly handoff: Handoff;
  private readonly maintenance: Maintenance;
  private readonly planner: SpawnPlanner;
  /** The newest generation; every restart raises it. */
  private generation = 1;
  private closing = false;
  /** start() spawns min_instances itself, one after another. */
  private starting = false;
  private closed: Promise<void> | undefined;
  private readonly timers: TimerHandle[] = [];

  constructor(options: GroupOptions, deps: { spawner: Spawner; clock: Clock; observer?: GroupObserver; poolRoom?: PoolRoom }) {
    this.options = options;
    this.clock = deps.clock;
    this.poolRoom = deps.poolRoom ?? { room: () => this.options.maxPoolSize - this.liveCount() };
    this.processes = new ProcessList(this.clock);
    this.resistance = new Resistance(options, this.clock);
    const observer = deps.observer ?? {};
    this.ctx = {
      options,
      clock: this.clock,
      observer,
      processes: this.processes,
      queue: this.queue,
      resistance: this.resistance,
      closing: () => this.closing,
      generation: () => this.generation,
      reconsider: () => this.reconsider(),
    };
    this.lifecycle = new Lifecycle(this.ctx, {
      spawning: () => this.spawning,
      restarts: () => this.restarts,
      handoff: () => this.handoff,
      maintenance: () => this.maintenance,
    });
    this.sessions = new Sessions(this.ctx, {
      restarting: () => this.restarts.running,
      closed: (p) => this.maintenance.checkRequestLimit(p),
      stuck: (p) => void this.stopProcess(p, 'max_request_time'),
    });
    this.spawning = new Spawning(deps.spawner, this.processes, this.clock, {
      closing: () => this.closing,
      outdated: (generation, cause) => this.planner.outdated(generation, cause),
      releaseOf: (generation) => this.resistance.releaseOf(generation),
      started: (info) => observer.spawnStarted?.(info),
      ready: (p, cause) => this.lifecycle.ready(p, cause),
      failed: (error, cause) => this.lifecycle.spawnFailed(error, cause),
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
      started: (info) => observer.restartStarted?.(info),
      progressed: (progress) => observer.restartProgress?.(progress),
      ended: (outcome) => observer.restartFinished?.(outcome),
    }, this.clock);
    this.planner = new SpawnPlanner(this.ctx, {
      sessions: this.sessions,
      restarting: () => this.restarts.running,
      spawn: (generation, cause) => void this.spawning.spawn(generation, cause).catch(() => undefined), // a failure is handled by spawnFailed
      poolRoom: this.poolRoom,
    });
    this.handoff = new Handoff({
      target: () => this.connectionTarget(),
      now: () => this.clock.now(),
      inProbation: (p) => this.lifecycle.inProbation(p),
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

  /** Spawns min_instances processes one after another, then starts the background checks. See startFailure(). */
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
    return this.lifecycle.everReady ? undefined : this.resistance.lastSpawnError;
  }

  /** Whether a process serves now (the readiness endpoint). */
  ready(): boolean {
    return this.processes.enabled().length > 0;
  }

  // ---- the proxy path and the hand-off path -------------------------------------------------

  tryAcquire(avoidPid?: number, request?: RequestInfo): Session | undefined {
    return this.sessions.tryAcquire(avoidPid, request);
  }

  acquire(options: AcquireOptions = {}): Promise<Session> {
    return this.sessions.acquire(options);
  }

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
    if (this.closing || this.queue.length > 0 || (this.options.concurrency > 0 && this.options.serialHandoff !== true)) return undefined;
    return this.sessions.pick((p) => this.handoff.takes(p), (p) => p.connectionCount, undefined);
  }

  /** Asks every process on the hand-off path for its latest request counts (metrics read them). */
  flushHandedOff(): Promise<void> {
    return this.handoff.flush(this.processes.all());
  }

  // ---- reconsidering ------------------------------------------------------------------------

  /** After every change: hand queued requests out, plan the next spawn, check the invariants. */
  private reconsider(): void {
    this.sessions.dispatch();
    if (!this.closing && !this.starting) this.planner.plan();
    if (VERIFY_INVARIANTS) this.verifyInvariants();
  }

  /** Drain (bounded by drain_timeout), then SIGTERM, then SIGKILL after the grace. Idempotent. */
  stopProcess(p: AppProcess, reason: StopReason): Promise<void> {
    return this.lifecycle.stop(p, reason);
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
    if (this.resistance.restartBegan()) this.ctx.observer.resistingCleared?.('restart');
    void this.spawning.abortOlderThan(generation); // spawns of older generations are outdated now
  }

  private restartSteps(): RestartHost {
    return {
      minInstances: this.options.minInstances,
      oldProcesses: (generation) => this.processes.all().filter((p) => p.generation < generation && p.state === 'enabled'),
      currentProcesses: (generation) => this.processes.all().filter((p) => p.generation === generation && (p.state === 'enabled' || p.state === 'spawning')),
      spawnFor: (generation, signal) => this.spawning.spawn(generation, 'restart', signal),
      probation: (p) => this.lifecycle.probation(p),
      stop: (p) => this.stopProcess(p, 'restart'),
      hasRoom: () => this.planner.hasRoom(this.options.rollingRestartSurge),
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
    if (was) this.ctx.observer.resistingCleared?.('resume');
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

  /** Live processes, for tests and the supervisor's observers. */
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
      resisting_deployment_error: resistingSnapshot(this.resistance, serving, now),
      last_spawn_error: this.resistance.lastSpawnError ? spawnErrorSnapshot(this.resistance.lastSpawnError) : null,
      ever_served: this.lifecycle.everReady,
      requests_in_queue: this.queue.length,
      spawning: this.processes.spawningCount(),
      processes: this.processes.all().filter((p) => p.state !== 'spawning').map((p) => processSnapshot(p, now, this.options.probationMs)),
      ...this.spawning.inspect(),
    };
  }

  verifyInvariants(): void {
    verifyInvariants({
      name: this.options.name,
      processes: this.processes.all(),
      maxPoolSize: this.options.maxPoolSize,
      surge: this.restarts.running || this.resistance.resisting ? this.options.rollingRestartSurge : 0,
      waiting: this.queue.length,
      waitersAvoidNoPid: this.queue.noneAvoids(),
      closing: this.closing,
      sessionAvailable: this.sessions.route(undefined) !== undefined,
      resisting: this.resistance.resisting,
    });
  }
}
