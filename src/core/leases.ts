// What the proxy asks of the pool: a session on one process, for one request or upgraded connection.

import type { RequestInfo } from './app-process';
import type { UpstreamTarget } from './process-handle';

export interface Session {
  readonly pid: number;
  readonly generation: number;
  readonly target: UpstreamTarget;
  /**
   * Ends the session; exactly once, when the request (or upgraded connection) is over.
   * unreachable: the process refused or reset the connection before any response byte, so it is
   * likely dead; the pool skips it for a moment and does not count the request as served.
   * stuck: the request ran past max_request_time; the pool stops the process (and replaces it).
   */
  close(outcome?: { unreachable?: boolean; stuck?: boolean }): void;
  /**
   * Once the process has exited (within timeoutMs): whether it had started on the request with this
   * id (true), had not or is not to blame (false: its version was broken), or nobody can say
   * (undefined: it did not report, or it did not exit).
   */
  startedBeforeExit?(requestId: string, timeoutMs: number): Promise<boolean | undefined>;
}

/**
 * What a wait needs of an AbortSignal. An AbortSignal is one; the proxy passes a lighter one of its
 * own for each queued request (proxy/queue-abort.ts), because a Node AbortSignal is an EventTarget
 * that costs several microseconds to make and to listen to.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface AcquireOptions {
  /** Aborted when the visitor goes away while the request waits in the queue. */
  signal?: AbortSignalLike;
  /** Avoid this pid (the retry of an idempotent request after its process failed). */
  avoidPid?: number;
  /** The request the session serves: a process that dies while serving it is a crash that names it. */
  request?: RequestInfo;
}

export interface SessionSource {
  /**
   * A session on the enabled process with the fewest sessions, waiting in the queue when all are
   * busy. Rejects with CapacityError (queue full, shutting down), SpawnError (no process could be
   * started and none runs), or an AbortError when options.signal aborts.
   */
  acquire(options?: AcquireOptions): Promise<Session>;
  /**
   * The same session synchronously when one is free now and no request waits before this one;
   * undefined when acquire() must decide (queue, refuse). Optional: a source without it is
   * always asked through acquire().
   */
  tryAcquire?(avoidPid?: number, request?: RequestInfo): Session | undefined;
}

/** A visitor connection handed off whole to one process (the hand-off path). */
export interface ConnectionLease {
  readonly pid: number;
  readonly generation: number;
  /**
   * Sends the connection to the process; done() runs once, with returned = true when the process
   * gave it back untouched (route it again) and false when it is over; with replay, the process
   * read the start of a request the proxy answers (a static file): the proxy takes the connection,
   * these bytes first. The lease ends by itself.
   */
  hand(connection: unknown, done: (returned: boolean, replay?: Buffer) => void): void;
}

export interface ConnectionSource {
  /**
   * A process of the newest generation with the fewest connections that takes whole connections,
   * when one can take it now (out of probation) and no request waits in the queue; undefined
   * otherwise (the connection then goes through the proxy, which queues and answers errors).
   */
  tryAcquireConnection(): ConnectionLease | undefined;
  /** Whether tryAcquireConnection() would hand a connection now (nothing is taken). */
  takesConnectionsNow(): boolean;
}
