// The Group options the pool's unit tests start from (a 1-process app, max 4, no recycling,
// drain_timeout 5 s, probation 2 s); each test overrides what it is about.
import type { GroupOptions } from '../../src/core/group/group';

export function groupOptions(o: Partial<GroupOptions> = {}): GroupOptions {
  return {
    name: 'app',
    appRoot: '/srv/app/current',
    environment: 'production',
    minInstances: 1,
    maxPoolSize: 4,
    concurrency: 0,
    poolIdleTimeMs: 300_000,
    maxRequests: 0,
    memoryLimitBytes: 0,
    busyEventLoopUtilization: 0.85,
    busySessions: 16,
    maxRequestQueueSize: 100,
    drainTimeoutMs: 5000,
    terminateGraceMs: 1000,
    spawnTimeoutMs: 90_000,
    rollingRestartSurge: 1,
    rollingRestarts: false,
    resistDeploymentErrors: false,
    probationMs: 2000,
    usageSampleIntervalMs: 2000,
    tickIntervalMs: 1000,
    ...o,
  };
}
