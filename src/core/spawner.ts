// The interface core calls to get app processes; spawn/child-spawner.ts implements it with real
// OS processes, tests with a fake whose every spawn is a deferred the test settles.

import type { ProcessHandle } from './process-handle';
import type { PreloaderSnapshot } from './snapshots';

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
  /** How processes are started, for status and metrics: the app type and, for smart spawning, its preloaders. */
  inspect?(): SpawnerSnapshot;
}

export interface SpawnerSnapshot {
  app_type: string;
  spawn_method: 'smart' | 'direct';
  preloaders?: PreloaderSnapshot[];
}
