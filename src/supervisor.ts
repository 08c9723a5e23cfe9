// Composition root: wires config, logger, spawner, pool, proxy and admin API; start / close / signals.

import type { HoldfastConfig } from './config/types';
import type { LogHandle } from './log/logger';

export interface SupervisorOptions {
  log: LogHandle;
  /** Install SIGINT/SIGTERM (clean stop) and SIGUSR1 (reopen log) handlers. The CLI sets it. */
  handleSignals?: boolean;
  /** Where instance dirs live; default $HOLDFAST_INSTANCE_REGISTRY_DIR or the system temp dir. */
  registryDir?: string;
}

export interface RunningSupervisor {
  /** The bound public address (port resolved when 0 was asked). */
  readonly address: { address: string; port: number };
  /** Settles when holdfast has stopped completely (all app processes gone). */
  readonly closed: Promise<void>;
  /** The clean stop; idempotent. */
  close(): Promise<void>;
}

/**
 * Starts holdfast; resolves once min_instances processes were attempted and the public port listens.
 * Rejects with a HoldfastError (HF_APP_DIR, HF_LISTEN, HF_INSTANCE_EXISTS, ...) and leaves nothing
 * running when it cannot start.
 */
export async function startSupervisor(config: HoldfastConfig, options: SupervisorOptions): Promise<RunningSupervisor> {
  void config;
  void options;
  throw new Error('supervisor: being written');
}
