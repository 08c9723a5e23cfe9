// What the parts of a group share: its options, clock, observer, state holders, and the one
// reconsider() that ends every change. Group builds it once and hands it to each part.

import type { SpawnError } from '../../errors';
import type { AppProcess, RequestInfo, SpawnCause, StopReason } from '../app-process';
import type { Clock } from '../clock';
import type { RestartOutcome, RestartProgress } from '../operations';
import type { ExitInfo } from '../process-handle';
import type { ScalingOptions } from '../scaling';
import type { RestartKind } from '../snapshots';
import type { ProcessList } from './process-list';
import type { Resistance } from './resistance';
import type { WaitQueue } from './wait-queue';

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
  /**
   * Processes take whole connections and serve them one request at a time, giving back those that
   * wait behind a long request (the Rack loader): a concurrency limit does not keep connections on
   * the proxy.
   */
  serialHandoff?: boolean;
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

export interface GroupContext {
  readonly options: GroupOptions;
  readonly clock: Clock;
  readonly observer: GroupObserver;
  readonly processes: ProcessList;
  readonly queue: WaitQueue;
  readonly resistance: Resistance;
  closing(): boolean;
  /** The newest generation (every restart raises it). */
  generation(): number;
  /** After every change: dispatch the queue, plan the next spawn, verify. */
  reconsider(): void;
}

/** The pool's say on how many more processes may start (max_pool_size across all groups). */
export interface PoolRoomLike {
  room(): number;
}
