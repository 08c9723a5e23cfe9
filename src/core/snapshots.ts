// What operators see of a running pool. Field names are the stable JSON of `holdfast status --json`
// (documented in docs/status-json.md): snake_case, never renamed.

import type { SpawnErrorDetails } from '../errors';

export type ProcessState = 'spawning' | 'enabled' | 'draining' | 'stopped';

export interface ProcessSnapshot {
  pid: number;
  generation: number;
  state: ProcessState;
  /** Enabled but still in probation_time: it takes no handed-off connection yet. */
  in_probation: boolean;
  /** Requests in progress: proxied sessions plus the recent peak on handed-off connections. */
  sessions: number;
  processed: number;
  /** Visitor connections handed off to the process (0 on the proxy path). */
  connections: number;
  started_at: string;
  uptime_seconds: number;
  cpu_percent: number;
  /** null until the first sample. */
  rss_bytes: number | null;
  last_used_at: string | null;
  release: string;
  commit: string | null;
}

export interface SpawnErrorSnapshot {
  error_id: string;
  code: string;
  message: string;
  category: SpawnErrorDetails['category'];
  exit_code: number | null;
  signal: string | null;
  command: string;
  output_tail: string[];
  release: string;
  generation: number;
  at: string;
}

export interface ResistingSnapshot {
  since: string;
  for_seconds: number;
  error: SpawnErrorSnapshot;
  /** Processes of a version that served, serving now, and how many the pool had before the failed deploy. */
  capacity: { serving: number; target: number };
  /** The release capacity is restored from (the last generation that served), or null when it cannot be (see note). */
  rollback_release: string | null;
  /** What the freeze means for capacity, in one sentence. */
  note: string;
}

export type RestartKind = 'plain' | 'rolling';

export interface RestartSnapshot {
  kind: RestartKind;
  generation: number;
  total: number;
  replaced: number;
  started_at: string;
  /** When the restart gives up (its deadline, derived from start_timeout, probation, drain and the pool size). */
  deadline_at: string;
}

export type RestartOutcomeKind = 'succeeded' | 'failed' | 'resisted' | 'superseded';

export interface LastRestartSnapshot {
  kind: RestartKind;
  generation: number;
  outcome: RestartOutcomeKind;
  finished_at: string;
  error: SpawnErrorSnapshot | null;
}

export interface GroupSnapshot {
  name: string;
  app_root: string;
  generation: number;
  environment: string;
  rolling_restarts: boolean;
  resist_deployment_errors: boolean;
  restart: RestartSnapshot | null;
  last_restart: LastRestartSnapshot | null;
  resisting_deployment_error: ResistingSnapshot | null;
  last_spawn_error: SpawnErrorSnapshot | null;
  /** Whether a process of the app has ever become ready (none has after a broken first start). */
  ever_served: boolean;
  requests_in_queue: number;
  spawning: number;
  processes: ProcessSnapshot[];
  // Added by the supervisor from the spawner (core does not know how processes are started):
  /** 'node' | 'rack' | 'wsgi' | 'generic'. */
  app_type?: string;
  /** 'smart' (forked from a preloader per generation) or 'direct'. */
  spawn_method?: 'smart' | 'direct';
  /** Smart spawning: the preloaders that run now. */
  preloaders?: PreloaderSnapshot[];
}

export interface PreloaderSnapshot {
  pid: number;
  generation: number;
  release: string;
  /** Processes forked by it that still run. */
  processes: number;
}

export interface PoolSnapshot {
  max_pool_size: number;
  process_count: number;
  /** Requests waiting before a group is chosen; holdfast routes at once, so this is 0 today. */
  requests_in_top_level_queue: number;
  groups: GroupSnapshot[];
}

