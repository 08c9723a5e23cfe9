// What operators can do with a running pool. The admin API serves exactly this; the supervisor
// implements it.

import type { PoolSnapshot, RestartKind, RestartOutcomeKind, SpawnErrorSnapshot } from './snapshots';

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
