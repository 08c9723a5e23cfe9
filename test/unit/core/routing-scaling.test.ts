import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickProcess } from '../../../src/core/routing';
import { idleToClean, isBusy, recycleReason, spawnBackoffMs, spawnDecision } from '../../../src/core/scaling';
import type { SpawnView } from '../../../src/core/scaling';

const p = (pid: number, o: Partial<{ generation: number; sessions: number; lastUsedAt: number; available: boolean; busy: boolean }> = {}) => ({
  pid,
  generation: 1,
  sessions: 0,
  lastUsedAt: 0,
  available: true,
  busy: false,
  ...o,
});

test('routing picks the process with the fewest sessions, ties to the least recently used', () => {
  assert.equal(pickProcess([p(1, { sessions: 2 }), p(2, { sessions: 1 }), p(3, { sessions: 1, lastUsedAt: -5 })])?.pid, 3);
});

test('routing prefers the newest generation while one of its processes is not busy', () => {
  assert.equal(pickProcess([p(1, { generation: 1 }), p(2, { generation: 2, sessions: 3 })])?.pid, 2);
  assert.equal(pickProcess([p(1, { generation: 1 }), p(2, { generation: 2, sessions: 3, busy: true })])?.pid, 1);
});

test('routing skips unavailable processes and avoids a pid unless it is the only one', () => {
  assert.equal(pickProcess([p(1, { available: false }), p(2, { sessions: 9 })])?.pid, 2);
  assert.equal(pickProcess([p(1), p(2, { sessions: 5 })], 1)?.pid, 2);
  assert.equal(pickProcess([p(1)], 1)?.pid, 1);
  assert.equal(pickProcess([p(1, { available: false })]), undefined);
});

test('a process is busy at its concurrency limit, or with a saturated event loop while working, or with piled-up sessions', () => {
  const o = { concurrency: 0, busyEventLoopUtilization: 0.85, busySessions: 16 };
  assert.equal(isBusy({ sessions: 1, eventLoopUtilization: 0.9 }, o), true);
  assert.equal(isBusy({ sessions: 0, eventLoopUtilization: 0.99 }, o), false);
  assert.equal(isBusy({ sessions: 3, eventLoopUtilization: 0.2 }, o), false);
  assert.equal(isBusy({ sessions: 16, eventLoopUtilization: undefined }, o), true);
  assert.equal(isBusy({ sessions: 2, eventLoopUtilization: 0 }, { ...o, concurrency: 2 }), true);
});

const view = (o: Partial<SpawnView> = {}): SpawnView => ({
  live: 1, enabled: 1, spawning: 0, busyEnabled: 0, waiting: 0, poolRoom: 5, resisting: false, restarting: false, backingOff: false, ...o,
});
const so = { minInstances: 1, maxPoolSize: 4 };

test('spawn on demand only when every process is busy, one at a time, under max_pool_size', () => {
  assert.equal(spawnDecision(view(), so), 'none');
  assert.equal(spawnDecision(view({ busyEnabled: 1 }), so), 'spawn');
  assert.equal(spawnDecision(view({ busyEnabled: 1, spawning: 1, live: 2 }), so), 'none');
  assert.equal(spawnDecision(view({ busyEnabled: 4, enabled: 4, live: 4 }), so), 'none');
  assert.equal(spawnDecision(view({ busyEnabled: 1, poolRoom: 0 }), so), 'none');
  assert.equal(spawnDecision(view({ live: 0, enabled: 0 }), so), 'spawn');
  assert.equal(spawnDecision(view({ live: 0, enabled: 0, backingOff: true }), so), 'none');
});

test('nothing spawns while resisting a deployment error or while a restart runs', () => {
  assert.equal(spawnDecision(view({ busyEnabled: 1, resisting: true }), so), 'none');
  assert.equal(spawnDecision(view({ live: 0, enabled: 0, resisting: true }), so), 'none');
  assert.equal(spawnDecision(view({ busyEnabled: 1, restarting: true }), so), 'none');
});

test('idle cleaning takes the longest-idle processes and never goes below min_instances', () => {
  const now = 100_000;
  const procs = [
    { id: 1, sessions: 0, lastUsedAt: 0 },
    { id: 2, sessions: 0, lastUsedAt: 10 },
    { id: 3, sessions: 1, lastUsedAt: 0 },
    { id: 4, sessions: 0, lastUsedAt: 99_000 },
  ];
  assert.deepEqual(idleToClean(procs, now, { minInstances: 1, poolIdleTimeMs: 5000 }), [1, 2]);
  assert.deepEqual(idleToClean(procs, now, { minInstances: 3, poolIdleTimeMs: 5000 }), [1]);
  assert.deepEqual(idleToClean(procs, now, { minInstances: 4, poolIdleTimeMs: 5000 }), []);
  assert.deepEqual(idleToClean(procs, now, { minInstances: 0, poolIdleTimeMs: 0 }), [], 'pool_idle_time 0 means never, as in Passenger');
});

test('recycling follows memory_limit and max_requests, each off at 0', () => {
  const o = { maxRequests: 100, memoryLimitBytes: 150 * 2 ** 20 };
  assert.equal(recycleReason({ processed: 100, rssBytes: 0 }, o), 'max_requests');
  assert.equal(recycleReason({ processed: 1, rssBytes: 151 * 2 ** 20 }, o), 'memory_limit');
  assert.equal(recycleReason({ processed: 10_000, rssBytes: 10 ** 12 }, { maxRequests: 0, memoryLimitBytes: 0 }), undefined);
});

test('spawn back-off doubles from one second up to a minute', () => {
  assert.deepEqual([0, 1, 2, 3, 7, 20].map(spawnBackoffMs), [0, 1000, 2000, 4000, 60_000, 60_000]);
});

test('routing agrees with the plain definition (filter, prefer, newest not busy, least busy) on many random pools', () => {
  // The definition pickProcess implements without intermediate arrays, written the obvious way.
  const reference = (ps: ReturnType<typeof p>[], avoidPid?: number) => {
    const available = ps.filter((x) => x.available);
    if (available.length === 0) return undefined;
    const preferred = available.filter((x) => x.pid !== avoidPid);
    const pool = preferred.length > 0 ? preferred : available;
    const newest = Math.max(...pool.map((x) => x.generation));
    const fresh = pool.filter((x) => x.generation === newest && !x.busy);
    const among = fresh.length > 0 ? fresh : pool;
    return among.reduce((best, x) => (x.sessions < best.sessions || (x.sessions === best.sessions && x.lastUsedAt < best.lastUsedAt) ? x : best));
  };
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 2000; i++) {
    const ps = Array.from({ length: 1 + rand(5) }, (_, j) =>
      p(j + 1, { generation: 1 + rand(3), sessions: rand(3), lastUsedAt: rand(3), available: rand(4) > 0, busy: rand(3) === 0 }),
    );
    const avoid = rand(2) === 0 ? undefined : 1 + rand(5);
    assert.equal(pickProcess(ps, avoid)?.pid, reference(ps, avoid)?.pid);
  }
});
