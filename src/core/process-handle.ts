// A running app process as core sees it: its handle, where it listens, how it exits, its load, and
// (on the hand-off path) the taker of whole visitor connections. spawn/ implements these.

export type UpstreamTarget =
  | { kind: 'unix'; socketPath: string }
  | { kind: 'tcp'; host: string; port: number };

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export interface UsageSample {
  rssBytes: number;
  /** CPU used since the previous sample, in percent of one core. */
  cpuPercent: number;
}

/** Request counts a process reports for its handed-off connections (deltas since its last report), for metrics. */
export interface RequestStats {
  /** Per status class 1xx..5xx. */
  status: number[];
  /** Per bucket of the duration histogram (non-cumulative), the last one past every bound. */
  buckets: number[];
  /** Seconds. */
  sum: number;
  count: number;
}

/**
 * The hand-off path (docs/performance.md): a Node app process whose server is an HTTP server takes
 * whole visitor connections, which holdfast then no longer reads. Core sees a connection only as an
 * opaque value it passes through and a count; spawn/ implements it over the hook's IPC channel.
 */
export interface ConnectionTaker {
  /**
   * Sends the connection to the process. done() runs exactly once: returned = true when the process
   * gave it back untouched, at rest between two requests (it is draining, or it never got it), so
   * it can go elsewhere; false when the connection is over (closed by either side, or the process
   * exited). replay: the process read the start of a request that holdfast answers itself (a
   * static file): the connection goes to the proxy, these bytes first.
   */
  take(connection: unknown, done: (returned: boolean, replay?: Buffer) => void): void;
  /** Take no more: give back the connections at rest now, and the others after their current answer. */
  drain(): void;
  /** The most requests in progress at once on handed-off connections since the last report. */
  peakRequests(): number;
  /** Requests started on handed-off connections since the process started. */
  servedRequests(): number;
  /**
   * Called when the process has started max_requests requests on handed-off connections; it takes
   * no new request until the listener answers: true = it is being recycled (drain() follows),
   * false = keep serving (recycling is off while resisting a deployment error).
   */
  onLimit(listener: () => boolean): void;
  /** A new process is up: give back connections at rest until only `keep` are left, so they spread. */
  shed(keep: number): void;
  /** Fresh request counts from the process (metrics read them); resolves within a short bound even if it does not answer. */
  flush(): Promise<void>;
  /**
   * A process that serves one request at a time (the Rack loader) gave back connections whose
   * request waited behind a long one: it takes no session and no connection until it says it is
   * free again. Absent: never busy.
   */
  busyNow?(): boolean;
  /** Called when the process is free again after busyNow(). */
  onAvailable?(listener: () => void): void;
}

/** A running, ready app process. */
export interface ProcessHandle {
  readonly pid: number;
  readonly target: UpstreamTarget;
  /** The resolved app dir (release) the process was started from. */
  readonly release: string;
  /** The git commit of the release, where it is a git checkout. */
  readonly commit: string | undefined;
  /** Settles when the process has exited, for whatever reason. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** Latest event-loop utilization (0..1) reported by the Node hook; undefined for generic apps. */
  eventLoopUtilization(): number | undefined;
  /** SIGTERM to the process group, SIGKILL after graceMs; resolves on exit. Idempotent. */
  terminate(graceMs: number): Promise<ExitInfo>;
  /** RSS and CPU of the process (and its process group), read from the OS. */
  sampleUsage(): Promise<UsageSample>;
  /** The last lines the process wrote (stdout and stderr), oldest first: evidence when it dies young. */
  recentOutput?(): readonly string[];
  /**
   * After the process exited: the request ids it reported in progress when it exited (the Node
   * hook does), or undefined when it reported nothing (killed, or not a Node app).
   */
  startedAtExit?(): Promise<ReadonlySet<string> | undefined>;
  /** Present when the process takes whole connections (the hand-off path). */
  readonly connectionTaker?: ConnectionTaker;
  /**
   * Smart spawning: the pid of the preloader that loaded the app and forked this process. Processes
   * forked by one preloader run the very code it loaded, whatever is on disk now.
   */
  readonly loadedBy?: number;
}

