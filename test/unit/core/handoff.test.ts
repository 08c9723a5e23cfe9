// The pool's side of the connection hand-off, replayed exactly with a fake clock and fake processes
// that take whole connections: balance, drains held by connections, rebalancing, max_requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Group } from '../../../src/core/group/group';
import type { GroupOptions } from '../../../src/core/group/group';
import type { ConnectionLease } from '../../../src/core/leases';
import { FakeClock, flush } from '../../helpers/fake-clock';
import { FakeSpawner, type FakeHandle, type FakeSerialTaker } from '../../helpers/fake-spawner';
import { groupOptions } from '../../helpers/group-options';

function setup(o: Partial<GroupOptions> = {}) {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  spawner.takesConnections = true;
  const group = new Group(groupOptions({ minInstances: 2, rollingRestarts: true, probationMs: 0, ...o }), { spawner, clock });
  return { clock, spawner, group };
}

async function started(s: ReturnType<typeof setup>): Promise<FakeHandle[]> {
  const done = s.group.start();
  for (let i = 0; i < s.group.options.minInstances; i++) {
    await flush();
    s.spawner.pending[0]!.succeed();
  }
  await done;
  await flush();
  s.group.verifyInvariants();
  return s.spawner.alive();
}

/** Hands a connection (any token) and records how it ended. */
function hand(group: Group, connection: unknown) {
  const lease = group.tryAcquireConnection();
  const outcome: { lease: ConnectionLease | undefined; returned?: boolean } = { lease };
  lease?.hand(connection, (returned) => (outcome.returned = returned));
  return outcome;
}

async function shutdown(s: ReturnType<typeof setup>) {
  for (const h of s.spawner.alive()) for (const c of [...h.connectionTaker!.held.keys()]) h.connectionTaker!.settle(c, false);
  let done = false;
  const closing = s.group.close().then(() => (done = true));
  for (let i = 0; i < 10 && !done; i++) await s.clock.advance(s.group.options.drainTimeoutMs);
  await closing;
  assert.equal(s.spawner.alive().length, 0);
}

test('connections go to the process with the fewest, and each one counts until the process is through with it', async () => {
  const s = setup();
  const [a, b] = await started(s);
  const pids = [1, 2, 3, 4].map((c) => hand(s.group, c).lease!.pid);
  assert.deepEqual(pids.sort(), [a!.pid, a!.pid, b!.pid, b!.pid].sort());
  const counts = () => s.group.snapshot().processes.map((p) => p.connections);
  assert.deepEqual(counts(), [2, 2]);
  a!.connectionTaker!.settle([...a!.connectionTaker!.held.keys()][0], false);
  assert.deepEqual(counts(), [1, 2]);
  assert.equal(hand(s.group, 5).lease!.pid, a!.pid, 'the next goes where there are fewest');
  s.group.verifyInvariants();
  await shutdown(s);
});

test('no connection is handed while requests queue or with a concurrency limit: the proxy takes those', async () => {
  const s = setup({ concurrency: 2 });
  await started(s);
  assert.equal(s.group.tryAcquireConnection(), undefined);
  await shutdown(s);

  const q = setup({ minInstances: 0, maxPoolSize: 1 });
  await q.group.start();
  assert.equal(q.group.tryAcquireConnection(), undefined, 'no process yet');
  const waiting = q.group.acquire();
  assert.equal(q.group.tryAcquireConnection(), undefined, 'a request waits');
  await flush();
  q.spawner.pending[0]!.succeed();
  const session = await waiting;
  session.close();
  assert.ok(q.group.tryAcquireConnection(), 'the queue is empty again');
  await shutdown(q);
});

test('a draining process is told to drain and is stopped only once its connections are back or closed', async () => {
  const s = setup();
  const [a] = await started(s);
  const held = [hand(s.group, 'x'), hand(s.group, 'y'), hand(s.group, 'z')].filter((h) => h.lease!.pid === a!.pid);
  assert.ok(held.length >= 1);
  const stopped = s.group.stopProcess(s.group.liveProcesses().find((p) => p.pid === a!.pid)!, 'restart');
  assert.equal(a!.connectionTaker!.drained, true);
  await flush();
  assert.equal(a!.terminated, false, 'its connections hold the drain');
  const keys = [...a!.connectionTaker!.held.keys()];
  a!.connectionTaker!.settle(keys[0], true); // given back at rest
  for (const k of keys.slice(1)) a!.connectionTaker!.settle(k, false);
  await stopped;
  assert.equal(a!.terminated, true);
  assert.equal(held[0]!.returned, true);
  assert.equal(s.group.tryAcquireConnection()?.pid !== a!.pid, true, 'a drained process takes none');
  await shutdown(s);
});

test('connections a process never gives back hold its drain for drain_timeout at most', async () => {
  const s = setup();
  const [a] = await started(s);
  while (a!.connectionTaker!.held.size === 0) hand(s.group, {});
  const stopped = s.group.stopProcess(s.group.liveProcesses().find((p) => p.pid === a!.pid)!, 'restart');
  await s.clock.advance(4999);
  assert.equal(a!.terminated, false);
  await s.clock.advance(1);
  await stopped;
  assert.equal(a!.terminated, true);
  await shutdown(s);
});

test('when the pool grows, fuller processes are asked to give back connections at rest down to a fair share', async () => {
  const s = setup({ minInstances: 1 });
  const [a] = await started(s);
  for (let c = 0; c < 10; c++) hand(s.group, c);
  assert.equal(a!.connectionTaker!.held.size, 10);
  // Saturated: a spawn on demand.
  a!.elu = 0.95;
  a!.connectionTaker!.peak = 10;
  hand(s.group, 10);
  await flush();
  assert.equal(s.spawner.pending.length, 1);
  s.spawner.pending[0]!.succeed();
  await flush();
  assert.deepEqual(a!.connectionTaker!.sheds, [6], '11 connections over 2 processes: keep 6');
  await shutdown(s);
});

test('max_requests on handed-off connections: the process is recycled when it says it reached the limit, not while resisting', async () => {
  const s = setup({ maxRequests: 100 });
  const [a] = await started(s);
  a!.connectionTaker!.served = 100;
  assert.equal(a!.connectionTaker!.limitListener!(), true, 'recycled');
  assert.equal(a!.connectionTaker!.drained, true);
  assert.ok(s.group.liveProcesses().every((p) => p.pid !== a!.pid || p.state === 'draining'));
  await shutdown(s);

  const r = setup({ maxRequests: 100, resistDeploymentErrors: true });
  const [b, c] = await started(r);
  const restart = r.group.restart({ rolling: true });
  await flush();
  r.spawner.pending[0]!.fail();
  await restart.done;
  assert.equal(r.group.resisting, true);
  b!.connectionTaker!.served = 150;
  assert.equal(b!.connectionTaker!.limitListener!(), false, 'keeps serving while resisting');
  assert.equal(b!.connectionTaker!.drained, false);
  assert.ok(c);
  await shutdown(r);
});

test('a process with open but quiet connections is idle; requests on them are use', async () => {
  const s = setup({ minInstances: 1, poolIdleTimeMs: 10_000 });
  const [a] = await started(s);
  // Grow to two.
  a!.elu = 0.95;
  a!.connectionTaker!.peak = 20;
  hand(s.group, 'a1');
  await flush();
  const b = s.spawner.pending[0]!.succeed();
  await flush();
  a!.elu = 0;
  a!.connectionTaker!.peak = 0;
  hand(s.group, 'b1'); // to b, the one with fewer
  assert.equal(b!.connectionTaker!.held.size, 1);
  // a serves requests on its connection; b's stays open and quiet.
  for (let t = 0; t < 12; t++) {
    a!.connectionTaker!.served += 5;
    await s.clock.advance(1000);
  }
  assert.equal(b.terminated, false, 'still draining: b holds a connection');
  assert.equal(b!.connectionTaker!.drained, true, 'the quiet process was asked to drain');
  assert.equal(a!.connectionTaker!.drained, false, 'the busy one was not');
  b!.connectionTaker!.settle('b1', true);
  await flush();
  assert.equal(b.terminated, true);
  await shutdown(s);
});

test('a process in probation takes no connection (the proxy retries what a crashing new version drops); once through, it gets its share', async () => {
  const s = setup({ minInstances: 1, probationMs: 2000 });
  const done = s.group.start();
  await flush();
  const a = s.spawner.pending[0]!.succeed();
  await done;
  assert.equal(s.group.takesConnectionsNow(), false);
  assert.equal(s.group.tryAcquireConnection(), undefined, 'proxied while the first version is unproven');
  await s.clock.advance(2000);
  assert.equal(s.group.takesConnectionsNow(), true);
  for (let c = 0; c < 6; c++) hand(s.group, c);
  // A second process on demand is in probation in its turn: a keeps every connection meanwhile.
  a.elu = 0.95;
  a!.connectionTaker!.peak = 6;
  s.group.tryAcquireConnection()?.hand('x', () => undefined);
  await flush();
  const b = s.spawner.pending[0]!.succeed();
  await flush();
  assert.deepEqual(a!.connectionTaker!.sheds, [], 'nothing is shed to a process in probation');
  assert.equal(hand(s.group, 'y').lease!.pid, a.pid);
  await s.clock.advance(2000);
  assert.deepEqual(a!.connectionTaker!.sheds, [4], 'probation over: 8 connections over 2, keep 4');
  assert.equal(b!.connectionTaker!.held.size, 0);
  await shutdown(s);
});

function serialSetup(o: Partial<GroupOptions> = {}) {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  spawner.takesConnections = true;
  spawner.serialTakers = true;
  // The Rack loader's defaults: one request at a time per process, connections handed off anyway.
  const group = new Group(groupOptions({ minInstances: 1, maxPoolSize: 2, concurrency: 1, serialHandoff: true, probationMs: 0, ...o }), { spawner, clock });
  return { clock, spawner, group };
}

test('serial hand-off: with concurrency 1 connections are still handed, and a process busy with a long request takes no connection and no session until it is free', async () => {
  const s = serialSetup();
  const [a] = await started(s);
  const taker = a!.connectionTaker as FakeSerialTaker;
  assert.equal(hand(s.group, 1).lease!.pid, a!.pid, 'handed despite concurrency 1');
  taker.setBusy(true); // a long request: it gave back the connections waiting behind it
  assert.equal(s.group.tryAcquireConnection(), undefined, 'a busy process takes no connection: the proxy does');
  assert.equal(s.group.tryAcquire(), undefined, 'nor a session');
  // The request queues, and the queue grows the pool (Passenger's model: no waiting behind a request).
  let served: number | undefined;
  const waiting = s.group.acquire().then((session) => {
    served = session.pid;
    return session;
  });
  await flush();
  assert.equal(s.spawner.pending.length, 1, 'a process is spawned for the queued request');
  const b = s.spawner.pending[0]!.succeed();
  const session = await waiting;
  assert.equal(served, b.pid);
  session.close();
  // Free again: the next queued request may go to it at once.
  const [, next] = [hand(s.group, 2), s.group.acquire()];
  taker.setBusy(false);
  const again = await next;
  assert.ok([a!.pid, b.pid].includes(again.pid));
  again.close();
  assert.ok(s.group.tryAcquire(), 'a free serial process takes sessions again');
  s.group.verifyInvariants();
  await shutdown(s);
});

test('serial hand-off: a process busy with a request counts as busy for scaling, an idle one does not', async () => {
  const s = serialSetup();
  const [a] = await started(s);
  const p = s.group.liveProcesses()[0]!;
  const options = s.group.options;
  assert.equal(p.isBusy(options), false);
  (a!.connectionTaker as FakeSerialTaker).setBusy(true);
  assert.equal(p.isBusy(options), true, 'it said it is busy');
  (a!.connectionTaker as FakeSerialTaker).setBusy(false);
  a!.elu = 0.95;
  assert.equal(p.isBusy(options), true, 'busy most of the last moment');
  a!.elu = 0.2;
  const session = s.group.tryAcquire()!;
  assert.equal(p.isBusy(options), true, 'a proxied request fills it');
  session.close();
  assert.equal(p.isBusy(options), false);
  await shutdown(s);
});
