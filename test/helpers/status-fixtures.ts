// Fixed status documents for the renderer's tests and the admin test harness: a pool at rest,
// one in the middle of a rolling restart, and one resisting a deployment error.

import type { StatusDocument } from '../../src/admin/api';
import type { GroupSnapshot, PoolSnapshot, ProcessSnapshot, SpawnErrorSnapshot } from '../../src/core/control';

export const FIXED_DATE = '2026-03-01T12:00:00.000Z';
export const APP_ROOT = '/srv/shop/current';

export function processSnapshot(overrides: Partial<ProcessSnapshot> = {}): ProcessSnapshot {
  return {
    pid: 4101,
    generation: 3,
    state: 'enabled',
    in_probation: false,
    sessions: 1,
    processed: 1520,
    connections: 0,
    started_at: '2026-03-01T10:57:55.000Z',
    uptime_seconds: 3725, // 1h 2m 5s
    cpu_percent: 2.4,
    rss_bytes: 52 * 1024 * 1024,
    last_used_at: '2026-03-01T11:59:57.000Z', // 3s before FIXED_DATE
    release: APP_ROOT,
    commit: null,
    ...overrides,
  };
}

export function groupSnapshot(overrides: Partial<GroupSnapshot> = {}): GroupSnapshot {
  return {
    name: APP_ROOT,
    app_root: APP_ROOT,
    generation: 3,
    environment: 'production',
    rolling_restarts: true,
    resist_deployment_errors: true,
    restart: null,
    last_restart: null,
    resisting_deployment_error: null,
    last_spawn_error: null,
    requests_in_queue: 0,
    spawning: 0,
    processes: [processSnapshot(), processSnapshot({ pid: 4102, sessions: 0, processed: 1311, cpu_percent: 0, rss_bytes: 48 * 1024 * 1024 })],
    ...overrides,
  };
}

export function poolSnapshot(groups: GroupSnapshot[] = [groupSnapshot()]): PoolSnapshot {
  return {
    max_pool_size: 6,
    process_count: groups.reduce((n, g) => n + g.processes.length, 0),
    requests_in_top_level_queue: 0,
    groups,
  };
}

/** The output of a Node app with a syntax error, as the spawner captures it. */
export const SYNTAX_ERROR_OUTPUT = [
  '/srv/shop/releases/20260301115900/app.js:3',
  "const app = express(;",
  '                   ^',
  '',
  "SyntaxError: Unexpected token ';'",
  '    at internalCompileFunction (node:internal/vm:76:18)',
  '    at wrapSafe (node:internal/modules/cjs/loader:1283:20)',
  '    at Module._compile (node:internal/modules/cjs/loader:1328:27)',
  '',
  'Node.js v20.20.2',
];

export function spawnErrorSnapshot(overrides: Partial<SpawnErrorSnapshot> = {}): SpawnErrorSnapshot {
  return {
    error_id: '3f9a2c1e',
    code: 'HF_SPAWN_EXITED',
    message: 'the app process exited with code 1 before it was ready',
    category: 'exited',
    exit_code: 1,
    signal: null,
    command: 'node app.js',
    output_tail: SYNTAX_ERROR_OUTPUT,
    release: '/srv/shop/releases/20260301115900',
    generation: 4,
    at: '2026-03-01T11:58:00.000Z',
    ...overrides,
  };
}

export function restartingGroup(): GroupSnapshot {
  return groupSnapshot({
    restart: { kind: 'rolling', generation: 4, total: 3, replaced: 2, started_at: '2026-03-01T11:59:48.000Z' },
    spawning: 1,
    processes: [
      processSnapshot({ pid: 4201, generation: 4, processed: 12, uptime_seconds: 9, last_used_at: '2026-03-01T11:59:59.000Z' }),
      processSnapshot({ pid: 4202, generation: 4, processed: 3, uptime_seconds: 4, last_used_at: null, sessions: 0 }),
      processSnapshot({ pid: 4103, state: 'draining' }),
    ],
  });
}

export function resistingGroup(): GroupSnapshot {
  const error = spawnErrorSnapshot();
  return groupSnapshot({
    last_restart: { kind: 'rolling', generation: 4, outcome: 'resisted', finished_at: '2026-03-01T11:58:00.000Z', error },
    resisting_deployment_error: { since: '2026-03-01T11:58:00.000Z', for_seconds: 120, error },
    last_spawn_error: error,
  });
}

export function statusDocument(pool: PoolSnapshot = poolSnapshot(), overrides: Partial<StatusDocument> = {}): StatusDocument {
  return {
    version: '0.1.0',
    instance: { name: 'shop', pid: 4000, address: '0.0.0.0', port: 3000, started_at: '2026-03-01T10:57:50.000Z', uptime_seconds: 3730 },
    date: FIXED_DATE,
    ...pool,
    ...overrides,
  };
}
