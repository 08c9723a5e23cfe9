// How a loaded configuration becomes the Group's options: the one place config meets core.

import type { HoldfastConfig } from '../config/types';
import type { GroupOptions } from '../core/group/group';
import { DEFAULT_BUSY_EVENT_LOOP_UTILIZATION, DEFAULT_BUSY_SESSIONS } from '../core/scaling';

/** Between SIGTERM and SIGKILL when stopping an app process. */
export const TERMINATE_GRACE_MS = 5000;
const USAGE_SAMPLE_INTERVAL_MS = 2000;
const TICK_INTERVAL_MS = 500;

/**
 * Whether visitor connections are handed whole to the app processes (docs/performance.md): Node
 * apps through the hook, with no concurrency limit; Rack apps through the loader, which serves one
 * request at a time (concurrency 0 or 1). max_request_time needs to see every request, so it keeps
 * them on the proxy path.
 */
export function handoffMode(config: HoldfastConfig): 'off' | 'node' | 'serial' {
  if (!config.connectionHandoff || config.maxRequestTimeMs > 0) return 'off';
  if (config.appType === 'node' && config.concurrency === 0) return 'node';
  if (config.appType === 'rack' && config.concurrency <= 1) return 'serial';
  return 'off';
}

export function groupOptions(config: HoldfastConfig): GroupOptions {
  return {
    name: config.name,
    appRoot: config.appDir,
    environment: config.environment,
    minInstances: config.minInstances,
    maxPoolSize: config.maxPoolSize,
    concurrency: config.concurrency,
    poolIdleTimeMs: config.poolIdleTimeMs,
    maxRequests: config.maxRequests,
    memoryLimitBytes: config.memoryLimitBytes,
    busyEventLoopUtilization: DEFAULT_BUSY_EVENT_LOOP_UTILIZATION,
    busySessions: DEFAULT_BUSY_SESSIONS,
    maxRequestQueueSize: config.maxRequestQueueSize,
    drainTimeoutMs: config.drainTimeoutMs,
    terminateGraceMs: TERMINATE_GRACE_MS,
    spawnTimeoutMs: config.startTimeoutMs + (config.healthCheckPath !== undefined ? config.healthCheckTimeoutMs : 0),
    rollingRestarts: config.rollingRestarts,
    rollingRestartSurge: config.rollingRestartSurge,
    resistDeploymentErrors: config.resistDeploymentErrors,
    probationMs: config.probationMs,
    usageSampleIntervalMs: USAGE_SAMPLE_INTERVAL_MS,
    tickIntervalMs: TICK_INTERVAL_MS,
    serialHandoff: handoffMode(config) === 'serial',
  };
}
