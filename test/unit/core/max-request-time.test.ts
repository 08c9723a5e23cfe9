// The core's part of max_request_time: a session closed as stuck stops its process (reason
// max_request_time), and the slot it frees goes to no new request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Group } from '../../../src/core/group/group';
import type { Session } from '../../../src/core/leases';
import { FakeClock, flush } from '../../helpers/fake-clock';
import { FakeSpawner } from '../../helpers/fake-spawner';
import { groupOptions } from '../../helpers/group-options';

test('a session closed as stuck stops its process with reason max_request_time; the waiting request goes to the replacement', async () => {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  const stopped: string[] = [];
  const group = new Group(groupOptions({ minInstances: 1, maxPoolSize: 1, concurrency: 1 }), {
    spawner,
    clock,
    observer: { processStopped: (p, reason) => stopped.push(`${p.pid}:${reason}`) },
  });
  const starting = group.start();
  await flush();
  spawner.pending[0]!.succeed();
  await starting;
  await clock.advance(5000); // past probation
  const victim = spawner.handles[0]!;
  const held = await group.acquire();
  const queued: { session?: Session } = {};
  void group.acquire().then((s) => (queued.session = s));
  await flush();
  held.close({ stuck: true });
  await flush();
  assert.equal(queued.session === undefined, true, 'the stuck process takes no new request');
  assert.equal(victim.terminated, true);
  assert.deepEqual(stopped, [`${victim.pid}:max_request_time`]);
  group.verifyInvariants();
  assert.equal(spawner.pending.length, 1, 'a replacement is spawned');
  const replacement = spawner.pending[0]!.succeed();
  await flush();
  assert.equal(queued.session?.pid, replacement.pid);
  queued.session!.close();
  group.verifyInvariants();
  const closing = group.close();
  for (let i = 0; i < 5; i++) await clock.advance(group.options.drainTimeoutMs);
  await closing;
  assert.equal(spawner.alive().length, 0);
});
