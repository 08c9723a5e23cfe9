// Plain and rolling restarts, and resistance, replayed step by step with the fake spawner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Group } from '../../../src/core/group/group';
import type { GroupOptions } from '../../../src/core/group/group';
import type { RestartProgress } from '../../../src/core/operations';
import type { Session } from '../../../src/core/leases';
import { SpawnError } from '../../../src/errors';
import { FakeClock, flush } from '../../helpers/fake-clock';
import { FakeSpawner } from '../../helpers/fake-spawner';
import type { FakeHandle } from '../../helpers/fake-spawner';

function setup(o: Partial<GroupOptions> = {}) {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  const group = new Group(
    {
      name: 'app', appRoot: '/srv/app/current', environment: 'production',
      minInstances: 3, maxPoolSize: 4, concurrency: 0, poolIdleTimeMs: 300_000, maxRequests: 0, memoryLimitBytes: 0,
      busyEventLoopUtilization: 0.85, busySessions: 16, maxRequestQueueSize: 100, drainTimeoutMs: 5000, terminateGraceMs: 1000, spawnTimeoutMs: 90_000, rollingRestartSurge: 1,
      rollingRestarts: true, resistDeploymentErrors: true, probationMs: 2000, usageSampleIntervalMs: 2000, tickIntervalMs: 1000,
      ...o,
    },
    { spawner, clock },
  );
  return { clock, spawner, group };
}
type S = ReturnType<typeof setup>;

async function started(s: S): Promise<FakeHandle[]> {
  const done = s.group.start();
  for (let i = 0; i < s.group.options.minInstances; i++) {
    await flush();
    s.spawner.pending[0]!.succeed();
  }
  await done;
  await s.clock.advance(3000); // past probation
  return [...s.spawner.handles];
}

async function shutdown(s: S) {
  let done = false;
  const closing = s.group.close().then(() => (done = true));
  for (let i = 0; i < 10 && !done; i++) await s.clock.advance(5000);
  await closing;
  assert.equal(s.spawner.alive().length, 0);
}

/** Succeeds the pending spawn and lets the new process pass probation. */
async function nextSpawnSucceeds(s: S): Promise<FakeHandle> {
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'one spawn at a time');
  const h = s.spawner.pending[0]!.succeed();
  await s.clock.advance(2000);
  s.group.verifyInvariants();
  return h;
}

test('a rolling restart replaces every process one by one, the new one first', async () => {
  const s = setup();
  const old = await started(s);
  const progress: RestartProgress[] = [];
  const ticket = s.group.restart();
  ticket.onProgress((p) => progress.push(p));
  for (let i = 0; i < 3; i++) {
    await flush();
    assert.equal(old.filter((h) => h.terminated).length, i, 'an old process goes only after its replacement passed probation');
    await nextSpawnSucceeds(s);
  }
  const outcome = await ticket.done;
  assert.equal(outcome.outcome, 'succeeded');
  assert.equal(outcome.generation, 2);
  assert.ok(old.every((h) => h.terminated));
  assert.deepEqual(progress.map((p) => p.replaced), [1, 2, 3]);
  assert.deepEqual(s.group.snapshot().processes.map((p) => p.generation), [2, 2, 2]);
  assert.ok(s.group.liveCount() <= 4);
  await shutdown(s);
});

test('new requests prefer the newest generation during a rolling restart', async () => {
  const s = setup();
  await started(s);
  const ticket = s.group.restart();
  const fresh = await nextSpawnSucceeds(s);
  const session: Session = await s.group.acquire();
  assert.equal(session.pid, fresh.pid);
  session.close();
  for (let i = 0; i < 2; i++) await nextSpawnSucceeds(s);
  await ticket.done;
  await shutdown(s);
});

for (const [which, failAt] of [['first', 0], ['middle', 1], ['last', 2]] as const) {
  test(`a rolling restart whose ${which} replacement fails stops there and keeps every old process that was left`, async () => {
    const s = setup();
    const old = await started(s);
    const ticket = s.group.restart();
    for (let i = 0; i < failAt; i++) await nextSpawnSucceeds(s);
    await flush();
    const err = s.spawner.pending[0]!.fail('exited');
    const outcome = await ticket.done;
    assert.equal(outcome.outcome, 'resisted');
    assert.equal(outcome.error?.error_id, err.details.errorId);
    assert.equal(outcome.replaced, failAt);
    assert.equal(old.filter((h) => !h.terminated).length, 3 - failAt, 'the old processes left stay');
    const gens = s.group.snapshot().processes.map((p) => p.generation).sort();
    assert.deepEqual(gens, [...Array(3 - failAt).fill(1), ...Array(failAt).fill(2)]);
    assert.equal(s.group.resisting, true);
    const snap = s.group.snapshot();
    assert.equal(snap.generation, failAt > 0 ? 2 : 1, 'status shows the generation that serves');
    assert.equal(snap.last_restart?.generation, 2, 'the failed attempt shows in last_restart');
    // Every request is still served.
    const sessions = await Promise.all(Array.from({ length: 6 }, () => s.group.acquire()));
    await s.clock.advance(30_000);
    assert.equal(s.spawner.pending.length, 0, 'nothing spawns while resisting');
    for (const x of sessions) x.close();
    s.group.verifyInvariants();
    await shutdown(s);
  });
}

test('a new process that dies during probation fails the restart and its old process is never stopped', async () => {
  const s = setup();
  const old = await started(s);
  const ticket = s.group.restart();
  await flush();
  const fresh = s.spawner.pending[0]!.succeed();
  await s.clock.advance(1000);
  fresh.die({ code: null, signal: 'SIGKILL' });
  const outcome = await ticket.done;
  assert.equal(outcome.outcome, 'resisted');
  assert.equal(outcome.error?.category, 'probation');
  assert.match(outcome.error!.message, /SIGKILL.*memory/);
  assert.equal(old.filter((h) => h.terminated).length, 0);
  assert.equal(s.group.snapshot().processes.length, 3);
  await shutdown(s);
});

test('a restart asked for during a restart supersedes it and never interleaves', async () => {
  const s = setup();
  const old = await started(s);
  const first = s.group.restart();
  await nextSpawnSucceeds(s); // one old process replaced by generation 2
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'the first restart is mid-spawn');
  const second = s.group.restart();
  const r1 = await first.done;
  assert.equal(r1.outcome, 'superseded');
  assert.ok(s.spawner.pending.every((p) => p.request.generation === 3), 'the superseded spawn was aborted; only the second restart spawns');
  for (let i = 0; i < 3; i++) {
    await nextSpawnSucceeds(s);
    assert.ok(s.group.liveCount() <= 4);
  }
  const r2 = await second.done;
  assert.equal(r2.outcome, 'succeeded');
  assert.equal(r2.generation, 3);
  assert.deepEqual(s.group.snapshot().processes.map((p) => p.generation), [3, 3, 3]);
  assert.ok(old.every((h) => h.terminated));
  await shutdown(s);
});

test('a spawn that finishes after a restart began is stopped, not attached', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 3 });
  await started(s);
  s.spawner.handles[0]!.elu = 0.99;
  const busy = await s.group.acquire();
  await flush();
  s.spawner.ignoreAbort = true;
  const late = s.spawner.pending[0]!; // an on-demand spawn of generation 1
  const ticket = s.group.restart({ rolling: true });
  await flush();
  // The restart aborted it; even if the process reports ready now, it is not attached.
  const h = late.succeed();
  await flush();
  s.spawner.ignoreAbort = false;
  assert.equal(h.terminated, true);
  assert.ok(!s.group.snapshot().processes.some((p) => p.pid === h.pid));
  busy.close();
  await nextSpawnSucceeds(s);
  assert.equal((await ticket.done).outcome, 'succeeded');
  await shutdown(s);
});

test('a restart that supersedes an on-demand spawn whose abort settles late waits for it: never two spawns at once', async () => {
  const s = setup({ minInstances: 1, maxPoolSize: 3 });
  await started(s);
  s.spawner.handles[0]!.elu = 0.99;
  const busy = await s.group.acquire();
  await flush();
  s.spawner.ignoreAbort = true; // like ChildSpawner, whose abort settles only once the child is gone
  const late = s.spawner.pending[0]!;
  const ticket = s.group.restart({ rolling: true });
  for (let i = 0; i < 5; i++) {
    await s.clock.advance(1000);
    assert.equal(s.spawner.pending.length, 1, 'the restart has not spawned beside the aborted spawn');
    s.group.verifyInvariants();
  }
  late.fail('exited', 'aborted at last');
  s.spawner.ignoreAbort = false;
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'now the restart spawns');
  assert.equal(s.spawner.pending[0]!.request.generation, 2);
  busy.close();
  await nextSpawnSucceeds(s);
  assert.equal((await ticket.done).outcome, 'succeeded');
  assert.equal(s.group.resisting, false, 'the aborted spawn failing late is not a spawn error');
  await shutdown(s);
});

test('a plain restart stops the old processes first while requests queue, then spawns the new ones', async () => {
  const s = setup({ minInstances: 2, rollingRestarts: false, resistDeploymentErrors: false });
  const old = await started(s);
  const ticket = s.group.restart();
  await flush();
  assert.ok(old.every((h) => h.terminated));
  let served: Session | undefined;
  void s.group.acquire().then((x) => (served = x));
  await flush();
  assert.equal(s.group.queueLength(), 1);
  const h = s.spawner.pending[0]!.succeed();
  await flush();
  assert.equal(served?.pid, h.pid, 'the queued request goes to the first new process');
  served!.close();
  await flush();
  s.spawner.pending[0]!.succeed();
  await s.clock.advance(2000);
  assert.equal((await ticket.done).outcome, 'succeeded');
  await shutdown(s);
});

test('a plain restart into a broken version gives the waiting visitors the error page', async () => {
  const s = setup({ minInstances: 1, rollingRestarts: false, resistDeploymentErrors: false });
  await started(s);
  const ticket = s.group.restart();
  await flush();
  let error: unknown;
  s.group.acquire().catch((e) => (error = e));
  await flush();
  s.spawner.pending[0]!.fail('exited');
  const outcome = await ticket.done;
  assert.equal(outcome.outcome, 'failed');
  await flush();
  assert.ok(error instanceof SpawnError);
  assert.equal(s.group.resisting, false);
  await shutdown(s);
});

test('the next restart clears the resisting flag and tries again, and sets it again if it fails', async () => {
  const s = setup();
  await started(s);
  let ticket = s.group.restart();
  await flush();
  s.spawner.pending[0]!.fail();
  assert.equal((await ticket.done).outcome, 'resisted');
  ticket = s.group.restart();
  assert.equal(s.group.resisting, false);
  await flush();
  s.spawner.pending[0]!.fail();
  assert.equal((await ticket.done).outcome, 'resisted');
  assert.equal(s.group.resisting, true);
  ticket = s.group.restart();
  for (let i = 0; i < 3; i++) await nextSpawnSucceeds(s);
  assert.equal((await ticket.done).outcome, 'succeeded');
  assert.equal(s.group.resisting, false);
  await shutdown(s);
});

test('a restart superseded after its new process started still retires the old one it replaced, so the pool keeps its size', async () => {
  const s = setup({ minInstances: 2, maxPoolSize: 4 });
  await started(s);
  const first = s.group.restart();
  await flush();
  s.spawner.pending[0]!.succeed(); // the first replacement is up, in probation
  await s.clock.advance(500);
  const second = s.group.restart(); // restart.txt touched, then `holdfast restart`
  await s.clock.advance(2000);
  assert.equal((await first.done).outcome, 'superseded');
  for (let i = 0; i < 2; i++) await nextSpawnSucceeds(s);
  assert.equal((await second.done).outcome, 'succeeded');
  assert.deepEqual(s.group.snapshot().processes.map((p) => p.generation), [3, 3]);
  await shutdown(s);
});
