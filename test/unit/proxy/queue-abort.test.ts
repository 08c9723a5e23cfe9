import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueueAbort } from '../../../src/proxy/queue-abort';
import { WaitQueue } from '../../../src/core/group/wait-queue';

test('QueueAbort behaves as an AbortSignal does for a wait: listeners run once, removed ones never, late ones never', () => {
  const abort = new QueueAbort();
  const calls: string[] = [];
  const a = () => calls.push('a');
  const b = () => calls.push('b');
  abort.addEventListener('abort', a);
  abort.addEventListener('abort', b);
  abort.removeEventListener('abort', b);
  assert.equal(abort.aborted, false);
  abort.abort();
  abort.abort();
  assert.equal(abort.aborted, true);
  abort.addEventListener('abort', () => calls.push('late'));
  assert.deepEqual(calls, ['a']);
});

test('a queued waiter given a QueueAbort leaves the queue, rejected with an AbortError, when it aborts', async () => {
  const queue = new WaitQueue();
  const abort = new QueueAbort();
  const waiting = new Promise((resolve, reject) => queue.enqueue({ avoidPid: undefined, request: undefined, resolve, reject }, abort));
  assert.equal(queue.length, 1);
  abort.abort();
  await assert.rejects(waiting, (error: Error) => error.name === 'AbortError');
  assert.equal(queue.length, 0);
});
