// holdfast in front of a real single-threaded HTTP/1.1 server (Python's http.server.HTTPServer, via
// app_start_command) with the default concurrency 0: the server serves one connection at a time and
// blocks on it while it is kept alive, so a request on any other connection is read only when that
// one closes. Every request must still be answered: the requests that find the connection busy wait
// for it, and a connection holdfast does not use is not left open under a server that waits on it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Holdfast, get, stopClean } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';

// get() opens a connection of its own for each request.
const START = ['--app-start-command', 'python3 server.py', '--max-pool-size', '1'];

test('a burst of requests at once is answered by a server that serves one connection at a time', { timeout: 60_000 }, async () => {
  const hf = await Holdfast.start(fixtureApp('one-connection'), START);
  try {
    const replies = await Promise.all(Array.from({ length: 20 }, () => get(hf.url('/'))));
    assert.deepEqual(
      replies.map((r) => r.status),
      replies.map(() => 200),
    );
    assert.ok(replies.every((r) => /^one-connection pid \d+ connection \d+$/.test(r.body)));
  } finally {
    await stopClean(hf);
  }
});

test('requests that went on connections of their own while a slow one was served are answered after it', { timeout: 60_000 }, async () => {
  const hf = await Holdfast.start(fixtureApp('one-connection'), START);
  try {
    // The slow request holds the connection longer than the others wait for it: they go on new
    // connections, which the server reads only once the connection it answered last is closed.
    const slow = get(hf.url('/slow?ms=400'));
    await new Promise((r) => setTimeout(r, 50));
    const fast = await Promise.all(Array.from({ length: 8 }, () => get(hf.url('/'))));
    assert.equal((await slow).status, 200);
    assert.deepEqual(
      fast.map((r) => r.status),
      fast.map(() => 200),
    );
    const connections = new Set(fast.map((r) => /connection (\d+)$/.exec(r.body)![1]));
    assert.ok(connections.size > 1, `the waiting requests went on connections of their own: ${[...connections].join(', ')}`);
  } finally {
    await stopClean(hf);
  }
});
