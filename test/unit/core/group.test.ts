// The pool's behaviour replayed exactly: a fake clock and a fake spawner whose spawns the test settles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Group } from '../../../src/core/group/group';
import type { GroupObserver, GroupOptions } from '../../../src/core/group/group';
import type { Session } from '../../../src/core/leases';
import { CapacityError, SpawnError } from '../../../src/errors';
import { FakeClock, flush } from '../../helpers/fake-clock';
import { FakeSpawner, type FakeHandle } from '../../helpers/fake-spawner';
import { groupOptions } from '../../helpers/group-options';

const MB = 1024 * 1024;

function setup(o: Partial<GroupOptions> = {}) {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  const events: string[] = [];
  const observer: GroupObserver = {
    resistingSet: (e) => events.push(`resisting:${e.details.errorId}`),
    resistingCleared: (why) => events.push(`cleared:${why}`),
    processStopped: (p, reason) => events.push(`stopped:${p.pid}:${reason}`),
    processDied: (p) => events.push(`died:${p.pid}`),
  };
  const group = new Group(
    groupOptions(o),
    { spawner, clock, observer },
  );
  const check = () => group.verifyInvariants();
  return { clock, spawner, group, events, check };
}

async function started(s: ReturnType<typeof setup>, count = s.group.options.minInstances) {
  const done = s.group.start();
  for (let i = 0; i < count; i++) {
    await flush();
    s.spawner.pending[0]!.succeed();
  }
  await done;
  await flush();
  s.check();
}

/** close() drains (bounded by drain_timeout on the fake clock): move the clock until it is done. */
async function shutdown(s: ReturnType<typeof setup>) {
  let done = false;
  const closing = s.group.close().then(() => (done = true));
  for (let i = 0; i < 10 && !done; i++) await s.clock.advance(s.group.options.drainTimeoutMs);
  await closing;
  assert.equal(s.group.liveCount(), 0);
  assert.equal(s.spawner.alive().length, 0, 'every process is gone');
}

/** Acquire and keep the promise's outcome observable without unhandled rejections. */
function track(p: Promise<Session>) {
  const r: { session?: Session; error?: unknown; settled: boolean } = { settled: false };
  p.then(
    (s) => Object.assign(r, { session: s, settled: true }),
    (e) => Object.assign(r, { error: e, settled: true }),
  );
  return r;
}

test('spawns min_instances processes one after another at start', async () => {
  const s = setup({ minInstances: 3 });
  const done = s.group.start();
  await flush();
  assert.equal(s.spawner.pending.length, 1);
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.equal(s.spawner.pending.length, 1);
  s.check();
  s.spawner.pending[0]!.succeed();
  await flush();
  s.spawner.pending[0]!.succeed();
  await done;
  assert.equal(s.group.snapshot().processes.length, 3);
  s.check();
  await shutdown(s);
});

test('routes each request to the enabled process with the fewest sessions', async () => {
  const s = setup({ minInstances: 2 });
  await started(s);
  const a = await s.group.acquire();
  const b = await s.group.acquire();
  assert.notEqual(a.pid, b.pid);
  a.close();
  const c = await s.group.acquire();
  assert.equal(c.pid, a.pid);
  b.close();
  c.close();
  const snap = s.group.snapshot();
  assert.deepEqual(snap.processes.map((p) => p.processed).sort(), [1, 2]);
  s.check();
  await shutdown(s);
});

test('queues requests at the concurrency limit and answers the one past max_request_queue_size at once', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 1, concurrency: 1, maxRequestQueueSize: 5 });
  await started(s);
  const first = await s.group.acquire();
  const queued = Array.from({ length: 5 }, () => track(s.group.acquire()));
  await flush();
  assert.equal(s.group.queueLength(), 5);
  await assert.rejects(s.group.acquire(), (e: unknown) => e instanceof CapacityError && e.code === 'HF_QUEUE_FULL');
  s.check();
  first.close();
  await flush();
  assert.equal(queued.filter((q) => q.session).length, 1, 'a freed process serves the oldest queued request at once');
  for (let i = 0; i < 5; i++) {
    const served = queued.find((q) => q.session && !(q as { done?: boolean }).done)!;
    (served as { done?: boolean }).done = true;
    served.session!.close();
    await flush();
  }
  assert.equal(queued.every((q) => q.session), true);
  s.check();
  await shutdown(s);
});

test('a request that gives up while queued leaves the queue', async () => {
  const s = setup({ maxPoolSize: 1, concurrency: 1 });
  await started(s);
  const busy = await s.group.acquire();
  const ac = new AbortController();
  const waiting = track(s.group.acquire({ signal: ac.signal }));
  await flush();
  ac.abort();
  await flush();
  assert.equal((waiting.error as Error).name, 'AbortError');
  assert.equal(s.group.queueLength(), 0);
  busy.close();
  s.check();
  await shutdown(s);
});

test('spawns on demand when every process has a saturated event loop, one at a time, up to max_pool_size', async () => {
  const s = setup({ maxPoolSize: 3 });
  await started(s);
  s.spawner.handles[0]!.elu = 0.97;
  const a = await s.group.acquire();
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'busy process triggers one spawn');
  await s.group.acquire();
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'never two spawns at once');
  s.check();
  const h2 = s.spawner.pending[0]!.succeed();
  await flush();
  h2.elu = 0.99;
  const c = await s.group.acquire();
  assert.equal(c.pid, h2.pid, 'the new process takes the next request');
  await flush();
  const h3 = s.spawner.pending[0]!.succeed();
  h3.elu = 0.99;
  await s.group.acquire();
  await flush();
  assert.equal(s.spawner.pending.length, 0, 'never past max_pool_size');
  assert.equal(s.group.liveCount(), 3);
  s.check();
  a.close();
  await shutdown(s);
});

test('idle processes are shut down after pool_idle_time, never below min_instances', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 3, poolIdleTimeMs: 2000 });
  await started(s);
  s.spawner.handles[0]!.elu = 0.95;
  const a = await s.group.acquire();
  await flush();
  s.spawner.pending[0]!.succeed();
  await flush();
  a.close();
  assert.equal(s.group.liveCount(), 2);
  await s.clock.advance(1500);
  assert.equal(s.group.liveCount(), 2, 'not idle long enough yet');
  await s.clock.advance(1500);
  assert.equal(s.group.liveCount(), 1);
  await s.clock.advance(10_000);
  assert.equal(s.group.liveCount(), 1, 'min_instances stays');
  assert.ok(s.events.some((e) => e.endsWith(':idle')));
  s.check();
  await shutdown(s);
});

test('a process that served max_requests is drained and replaced, and never serves more', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 2, maxRequests: 3, concurrency: 0 });
  await started(s);
  const first = s.spawner.handles[0]!;
  const sessions = [await s.group.acquire(), await s.group.acquire(), await s.group.acquire()];
  assert.ok(sessions.every((x) => x.pid === first.pid));
  const fourth = track(s.group.acquire());
  await flush();
  assert.equal(fourth.settled, false, 'the fourth request waits rather than exceed max_requests');
  for (const x of sessions) x.close();
  await flush();
  assert.equal(first.terminated, true);
  assert.ok(s.events.includes(`stopped:${first.pid}:max_requests`));
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.notEqual(fourth.session?.pid, first.pid);
  fourth.session!.close();
  s.check();
  await shutdown(s);
});

test('a process over memory_limit is stopped and replaced without exceeding max_pool_size', async () => {
  const s = setup({ minInstances: 2, maxPoolSize: 2, memoryLimitBytes: 150 * MB });
  await started(s);
  const [h1, h2] = s.spawner.handles;
  h1!.usage = { rssBytes: 200 * MB, cpuPercent: 5 };
  await s.clock.advance(2000);
  assert.equal(h1!.terminated, true);
  assert.equal(h2!.terminated, false);
  assert.ok(s.group.liveCount() <= 2);
  s.check();
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'replacement once the old one is gone');
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.equal(s.group.snapshot().processes.length, 2);
  s.check();
  await shutdown(s);
});

test('a process that dies is replaced and the waiting request is served by the replacement', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 1, concurrency: 1 });
  await started(s);
  const h = s.spawner.handles[0]!;
  await s.clock.advance(5000); // past probation: an ordinary crash
  const held = await s.group.acquire();
  const waiting = track(s.group.acquire());
  h.die({ code: null, signal: 'SIGKILL' });
  await flush();
  assert.ok(s.events.includes(`died:${h.pid}`));
  held.close({ unreachable: true });
  assert.equal(s.spawner.pending.length, 1);
  const h2 = s.spawner.pending[0]!.succeed();
  await flush();
  assert.equal(waiting.session?.pid, h2.pid);
  s.check();
  await shutdown(s);
});

test('a stop waits for in-flight sessions only up to drain_timeout, then terminates', async () => {
  const s = setup({ minInstances: 1, drainTimeoutMs: 3000 });
  await started(s);
  const h = s.spawner.handles[0]!;
  const stuck = await s.group.acquire();
  const closing = s.group.close();
  await s.clock.advance(2000);
  assert.equal(h.terminated, false, 'still draining');
  await s.clock.advance(1500);
  assert.equal(h.terminated, true, 'drain_timeout bounds the wait');
  await closing;
  stuck.close();
  assert.equal(s.group.liveCount(), 0);
});

test('without resistance a spawn error fails the waiting requests, and later ones fast until the back-off has passed', async () => {
  const s = setup({ minInstances: 1 });
  const start = s.group.start();
  await flush();
  const waiting = track(s.group.acquire());
  s.spawner.pending[0]!.fail('exited');
  await start;
  await flush();
  assert.ok(waiting.error instanceof SpawnError);
  await assert.rejects(s.group.acquire(), SpawnError);
  assert.equal(s.spawner.pending.length, 0, 'no spawn storm');
  await s.clock.advance(1100);
  const retry = track(s.group.acquire());
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'after the back-off a request tries again');
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.ok(retry.session);
  retry.session!.close();
  s.check();
  await shutdown(s);
});

test('a spawn failure on demand enters resistance: no visitor error, no more spawns, no idle cleaning', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 4, resistDeploymentErrors: true, poolIdleTimeMs: 1000 });
  await started(s);
  const h = s.spawner.handles[0]!;
  h.elu = 0.99;
  const a = await s.group.acquire();
  await flush();
  const waiting = track(s.group.acquire());
  const err = s.spawner.pending[0]!.fail('exited');
  await flush();
  assert.equal(s.group.resisting, true);
  assert.ok(s.events.includes(`resisting:${err.details.errorId}`));
  assert.equal(waiting.error, undefined, 'no visitor sees the spawn error');
  // A traffic spike spawns nothing.
  const more = await Promise.all(Array.from({ length: 10 }, () => s.group.acquire()));
  await s.clock.advance(10_000);
  assert.equal(s.spawner.pending.length, 0);
  for (const x of [a, ...more]) x.close();
  if (waiting.session) waiting.session.close();
  await s.clock.advance(60_000);
  assert.equal(h.terminated, false, 'idle past pool_idle_time, but not idle-cleaned while resisting');
  const snap = s.group.snapshot();
  assert.equal(snap.resisting_deployment_error?.error.error_id, err.details.errorId);
  assert.ok(snap.resisting_deployment_error!.for_seconds >= 70);
  s.check();
  await shutdown(s);
});

test('while resisting a process over memory_limit is still stopped, and is not replaced while others serve', async () => {
  const s = setup({ minInstances: 2, maxPoolSize: 3, resistDeploymentErrors: true, memoryLimitBytes: 100 * MB });
  await started(s);
  s.spawner.handles[0]!.elu = 0.99;
  s.spawner.handles[1]!.elu = 0.99;
  const a = await s.group.acquire();
  const b = await s.group.acquire();
  await flush();
  s.spawner.pending[0]!.fail();
  await flush();
  assert.equal(s.group.resisting, true);
  a.close();
  b.close();
  s.spawner.handles[0]!.usage = { rssBytes: 120 * MB, cpuPercent: 1 };
  await s.clock.advance(2000);
  assert.equal(s.spawner.handles[0]!.terminated, true);
  await s.clock.advance(10_000);
  assert.equal(s.spawner.pending.length, 0, 'not replaced');
  assert.equal(s.group.liveCount(), 1);
  s.check();
  await shutdown(s);
});

test('resume clears the flag and allows spawning again', async () => {
  const s = setup({ resistDeploymentErrors: true });
  await started(s);
  s.spawner.handles[0]!.elu = 0.99;
  const a = await s.group.acquire();
  await flush();
  s.spawner.pending[0]!.fail();
  await flush();
  assert.equal(s.group.resisting, true);
  assert.deepEqual(s.group.resume(), { was_resisting: true });
  assert.ok(s.events.includes('cleared:resume'));
  const b = await s.group.acquire();
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'traffic may spawn again');
  assert.deepEqual(s.group.resume(), { was_resisting: false });
  a.close();
  b.close();
  await shutdown(s);
});

test('while resisting, an old process that dies is replaced from its own release', async () => {
  const s = setup({ minInstances: 2, maxPoolSize: 3, rollingRestarts: true, resistDeploymentErrors: true });
  s.spawner.currentRelease = '/srv/app/releases/1';
  await started(s);
  s.spawner.currentRelease = '/srv/app/releases/2'; // the deploy tool switched `current`
  const ticket = s.group.restart();
  await flush();
  s.spawner.pending[0]!.fail('exited');
  const outcome = await ticket.done;
  assert.equal(outcome.outcome, 'resisted');
  await s.clock.advance(5000);
  s.spawner.handles[0]!.die({ code: null, signal: 'SIGKILL' });
  await flush();
  assert.equal(s.spawner.pending.length, 1);
  assert.equal(s.spawner.pending[0]!.release, '/srv/app/releases/1');
  assert.equal(s.spawner.pending[0]!.request.generation, 1);
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.equal(s.group.snapshot().processes.length, 2, 'the freeze does not decay');
  assert.equal(s.group.resisting, true, 'still resisting until an administrator acts');
  s.check();
  await shutdown(s);
});

test('while resisting with nothing left, one spawn at a time with back-off brings the old release back', async () => {
  // No surge: at max_pool_size the rolling restart retires the old process first (rolling_restart_surge 0).
  const s = setup({ minInstances: 1, maxPoolSize: 1, resistDeploymentErrors: true, memoryLimitBytes: 100 * MB, rollingRestartSurge: 0 });
  s.spawner.currentRelease = '/srv/app/releases/1';
  await started(s);
  await s.clock.advance(3000);
  s.spawner.currentRelease = '/srv/app/releases/2';
  const ticket = s.group.restart({ rolling: true });
  await flush();
  // At max_pool_size the rolling restart retires the old process first, then the new one fails.
  await flush();
  s.spawner.pending[0]!.fail('exited');
  assert.equal((await ticket.done).outcome, 'resisted');
  assert.equal(s.group.liveCount(), 0);
  await s.clock.advance(999);
  assert.equal(s.spawner.pending.length, 0, 'back-off first');
  await s.clock.advance(2);
  assert.equal(s.spawner.pending.length, 1);
  assert.equal(s.spawner.pending[0]!.release, '/srv/app/releases/1');
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.equal(s.group.liveCount(), 1);
  s.check();
  await shutdown(s);
});

test('while resisting, an old process that dies soon after it started is still replaced, not taken for a failed spawn', async () => {
  const s = setup({ minInstances: 2, maxPoolSize: 3, rollingRestarts: true, resistDeploymentErrors: true, probationMs: 3000 });
  await started(s); // no clock advance: the old processes are still within probation_time
  const ticket = s.group.restart();
  await flush();
  s.spawner.pending[0]!.fail('exited');
  assert.equal((await ticket.done).outcome, 'resisted');
  s.spawner.handles[0]!.die({ code: null, signal: 'SIGKILL' });
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'replaced');
  assert.equal(s.spawner.pending[0]!.request.generation, 1);
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.equal(s.group.snapshot().processes.length, 2);
  s.check();
  await shutdown(s);
});

test('with min_instances 0 nothing runs until the first request, which waits for its process', async () => {
  const s = setup({ minInstances: 0 });
  await s.group.start();
  assert.equal(s.spawner.pending.length, 0);
  const first = track(s.group.acquire());
  await flush();
  assert.equal(s.spawner.pending.length, 1);
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.ok(first.session);
  first.session!.close();
  s.check();
  await shutdown(s);
});

test('tryAcquire hands out a session synchronously when a process is free, and defers to acquire when the request must queue', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 1, concurrency: 1 });
  await started(s);
  const first = s.group.tryAcquire();
  assert.ok(first, 'a free process gives a session without a promise');
  assert.equal(s.group.tryAcquire(), undefined, 'at the concurrency limit nothing is handed out synchronously');
  const queued = track(s.group.acquire());
  await flush();
  assert.equal(s.group.queueLength(), 1);
  first.close();
  await flush();
  assert.ok(queued.session, 'the queued request got the freed process');
  queued.session!.close();
  const again = s.group.tryAcquire();
  assert.ok(again);
  const waiting = track(s.group.acquire());
  await flush();
  again.close();
  await flush();
  assert.ok(waiting.session);
  assert.equal(s.group.queueLength(), 0);
  // Nobody may overtake a queued request: with one waiting, tryAcquire gives nothing even if a process is free.
  const blocker = track(s.group.acquire());
  await flush();
  assert.equal(blocker.settled, false);
  assert.equal(s.group.tryAcquire(), undefined);
  waiting.session!.close();
  await flush();
  blocker.session!.close();
  s.check();
  await shutdown(s);
});

test('tryAcquire avoids the given pid while another process can serve', async () => {
  const s = setup({ minInstances: 2 });
  await started(s);
  const a = s.group.tryAcquire()!;
  a.close();
  const b = s.group.tryAcquire(a.pid)!;
  assert.notEqual(b.pid, a.pid);
  b.close();
  s.check();
  await shutdown(s);
});

/** A smart-spawning fake: every process is forked by the preloader `loadedBy` says. */
function forkedBy(h: FakeHandle, preloader: number): FakeHandle {
  Object.assign(h, { loadedBy: preloader });
  return h;
}

test('a young fork of a preloader whose code already served is not blamed on its version: the request it died on is not cleared for a retry', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 2, concurrency: 1, probationMs: 3000 });
  const done = s.group.start();
  await flush();
  forkedBy(s.spawner.pending[0]!.succeed(), 900);
  await done;
  await s.clock.advance(5000); // the first fork passes probation: preloader 900's code serves
  // A second fork of the same preloader, still in probation, dies on the request it was given.
  const first = await s.group.acquire();
  const waiting = s.group.acquire();
  await flush();
  const young = forkedBy(s.spawner.pending[0]!.succeed(), 900);
  const session = await waiting;
  assert.equal(session.pid, young.pid);
  young.die({ code: 9, signal: null });
  await flush();
  assert.equal(await session.startedBeforeExit!('r1', 1000), undefined, 'nobody can say: the request is the suspect');
  session.close({ unreachable: true });
  first.close();
  await flush();
  s.check();
  await shutdown(s);
});

test('a young fork of a preloader whose code never served is blamed on its version: the request it had may go elsewhere', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 2, concurrency: 1, probationMs: 3000 });
  const done = s.group.start();
  await flush();
  const h = forkedBy(s.spawner.pending[0]!.succeed(), 901);
  await done;
  const session = await s.group.acquire();
  h.die({ code: 3, signal: null }); // within probation: no process of preloader 901 has passed it
  await flush();
  assert.equal(await session.startedBeforeExit!('r1', 1000), false);
  session.close({ unreachable: true });
  await flush();
  await shutdown(s);
});
