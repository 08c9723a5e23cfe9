// The route most requests take in production: the pool hands out a session synchronously
// (tryAcquire), and the proxy dispatches in the same tick. It must behave exactly like the queued
// route: headers, retries, disconnects and the fallback to the queue when no process is free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { eventually, request } from '../../helpers/proxy-fakes';
import { startRig } from '../../helpers/proxy-setup';

const echo: http.RequestListener = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString() }));
  });
};

test('a request served through the synchronous route gets forwarded headers and its request id, over one reused connection', async () => {
  const rig = await startRig({ upstreams: [echo], synchronous: true });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await request(rig.port, { method: i === 1 ? 'POST' : 'GET', body: i === 1 ? 'payload' : undefined, headers: { connection: 'keep-alive, x-hop', 'x-hop': '1' }, agent });
      assert.equal(res.status, 200);
      const seen = JSON.parse(res.body.toString()) as { method: string; headers: http.IncomingHttpHeaders; body: string };
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
      assert.equal(seen.headers['x-hop'], undefined, 'a header named in Connection is hop-by-hop');
      assert.equal(seen.headers['x-request-id'], res.headers['x-request-id']);
      if (i === 1) assert.equal(seen.body, 'payload');
      if (i > 0) assert.equal(res.reusedSocket, true);
    }
    assert.equal(rig.sessions.synchronousAcquires.length, 3, 'no request needed the queue');
    await rig.sessions.closedCount(3);
    assert.equal(rig.sessions.open(), 0);
    assert.deepEqual(
      rig.done.map((d) => d.statusCode),
      [200, 200, 200],
    );
  } finally {
    agent.destroy();
    await rig.close();
  }
});

test('through the synchronous route a GET to an unreachable process is retried once on another, avoiding the first', async () => {
  const rig = await startRig({ upstreams: [echo], synchronous: true });
  rig.sessions.processes = [{ pid: 1000, target: { kind: 'unix', socketPath: join(rig.dir, 'gone.sock') } }, ...rig.sessions.processes];
  try {
    const res = await request(rig.port);
    assert.equal(res.status, 200);
    assert.deepEqual(rig.sessions.closed, [
      { pid: 1000, unreachable: true },
      { pid: 1001, unreachable: false },
    ]);
    assert.equal(rig.sessions.acquires[1]!.avoidPid, 1000);
    assert.equal(rig.sessions.synchronousAcquires.length, 2);
    const post = await request(rig.port, { method: 'POST', body: 'x' });
    assert.equal(post.status, 502, 'a POST is never retried');
  } finally {
    await rig.close();
  }
});

test('when no process is free the request falls back to the queue, and a visitor leaving there aborts its wait', async () => {
  const rig = await startRig({ upstreams: [echo], synchronous: true });
  rig.sessions.hold = true;
  try {
    const queued = request(rig.port);
    await eventually(() => rig.sessions.acquires.length === 1, 2_000, 'the queued acquire');
    assert.ok(rig.sessions.acquires[0]!.signal, 'a queued request can be aborted');
    const socket = net.connect(rig.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => rig.sessions.acquires.length === 2, 2_000, 'the second acquire');
    socket.destroy();
    await eventually(() => rig.sessions.aborted.length === 1, 2_000, 'the abandoned acquire to be aborted');
    rig.sessions.release();
    rig.sessions.synchronous = true;
    assert.equal((await queued).status, 200);
    assert.equal(rig.sessions.synchronousAcquires.length, 0);
    await eventually(() => rig.proxy.inFlight() === 0, 2_000, 'both exchanges to end');
    assert.equal(rig.sessions.open(), 0);
  } finally {
    await rig.close();
  }
});
