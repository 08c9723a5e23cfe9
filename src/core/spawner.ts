// The interface core calls to get app processes; spawn/child-spawner.ts implements it with real
// OS processes, tests with a fake whose every spawn is a deferred the test settles.

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
}

export interface SpawnRequest {
  generation: number;
  /**
   * Release dir to start from; undefined = resolve the configured app dir now (it may be a
   * symlink that a deploy tool has just switched).
   */
  release?: string;
  /** Aborting kills the process being spawned and rejects with an AbortError. */
  signal: AbortSignal;
}

export interface Spawner {
  /** Resolves once the process accepts connections; rejects with SpawnError otherwise. */
  spawn(request: SpawnRequest): Promise<ProcessHandle>;
  /** The command line shown in errors and status (no secrets). */
  describeCommand(): string;
}
