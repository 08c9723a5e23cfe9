// What operators can see and do with a running pool. The admin API serves exactly this;
// the supervisor implements it. Field names of the snapshots are the stable JSON of
// `holdfast status --json` (documented in docs/status-json.md): snake_case, never renamed.

import type { SpawnErrorDetails } from '../errors';

export type ProcessState = 'spawning' | 'enabled' | 'draining' | 'stopped';

export interface ProcessSnapshot {
  pid: number;
  generation: number;
  state: ProcessState;
  /** Requests in progress: proxied sessions plus the recent peak on handed-off connections. */
  sessions: number;
  processed: number;
  /** Visitor connections handed off to the process (0 on the proxy path). */
  connections: number;
  started_at: string;
  uptime_seconds: number;
  cpu_percent: number;
  rss_bytes: number;
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
}

export type RestartKind = 'plain' | 'rolling';

export interface RestartSnapshot {
  kind: RestartKind;
  generation: number;
  total: number;
  replaced: number;
  started_at: string;
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

export interface RestartProgress {
  kind: RestartKind;
  generation: number;
  total: number;
  replaced: number;
}

export interface RestartOutcome {
  outcome: RestartOutcomeKind;
  kind: RestartKind;
  generation: number;
  replaced: number;
  total: number;
  error: SpawnErrorSnapshot | null;
}

export interface RestartTicket {
  /** Called on each step (a process replaced), and once at the start. */
  onProgress(listener: (progress: RestartProgress) => void): void;
  readonly done: Promise<RestartOutcome>;
}

export interface Control {
  snapshot(): PoolSnapshot;
  /** rolling undefined = the configured default (rolling_restarts). */
  restart(options: { rolling?: boolean }): RestartTicket;
  /** Clears the resisting-deployment-error flag without a restart. */
  resume(): { was_resisting: boolean };
  /** The clean stop; resolves when everything is stopped. */
  stop(): Promise<void>;
}
