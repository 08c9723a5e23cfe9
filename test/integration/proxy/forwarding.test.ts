// Requests and answers go through the proxy intact, on reused connections on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { eventually, request } from '../../helpers/proxy-fakes';
import { startRig } from '../../helpers/proxy-setup';
import { createProxy } from '../../../src/proxy/server';
import { silentLogger } from '../../../src/log/logger';

/** Sends exactly these bytes and reads the answer until the proxy closes the connection. */
async function rawExchange(port: number, text: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(text);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, body: body.toString() }));
  });
}

for (const transport of ['unix', 'tcp'] as const) {
  test(`GET and POST round trip over a ${transport} target, reusing connections on both sides`, async () => {
    const rig = await startRig({ upstreams: [echo], transport });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const reused: boolean[] = [];
      for (let i = 0; i < 5; i++) {
        const get = await request(rig.port, { path: `/items/${i}?q=1`, agent });
        assert.equal(get.status, 200);
        const seen = JSON.parse(get.body.toString()) as { method: string; url: string };
        assert.equal(seen.method, 'GET');
        assert.equal(seen.url, `/items/${i}?q=1`);
        reused.push(get.reusedSocket);
        const post = await request(rig.port, { method: 'POST', path: '/items', body: `payload ${i}`, agent, headers: { 'content-type': 'text/plain' } });
        const posted = JSON.parse(post.body.toString()) as { method: string; body: string };
        assert.equal(posted.method, 'POST');
        assert.equal(posted.body, `payload ${i}`);
        reused.push(post.reusedSocket);
      }
      assert.deepEqual(reused, [false, ...Array<boolean>(9).fill(true)], 'the visitor connection is kept alive');
      assert.equal(rig.upstreams[0]!.connections(), 1, 'one upstream connection served all ten requests');
      assert.equal(rig.sessions.closed.length, 10);
      assert.equal(rig.sessions.open(), 0);
      assert.deepEqual(rig.sessions.doubleCloses, []);
      assert.ok(rig.done.every((d) => d.statusCode === 200 && d.pid === 1001 && d.durationMs >= 0));
    } finally {
      agent.destroy();
      await rig.close();
    }
  });
}

test('a chunked upload streams to the app as it comes and a chunked answer streams back', async () => {
  let firstChunkArrived: () => void = () => undefined;
  const arrived = new Promise<void>((resolve) => (firstChunkArrived = resolve));
  const rig = await startRig({
    upstreams: [
      (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => {
          chunks.push(c);
          firstChunkArrived();
        });
        req.on('end', () => {
          res.setHeader('x-saw-te', String(req.headers['transfer-encoding']));
          res.write('got ');
          setTimeout(() => res.end(Buffer.concat(chunks)), 10);
        });
      },
    ],
  });
  try {
    const answer = await new Promise<{ body: string; te: string | undefined; sawTe: string | undefined }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: rig.port, method: 'PUT', path: '/', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ body, te: res.headers['transfer-encoding'], sawTe: res.headers['x-saw-te'] as string | undefined }));
      });
      req.on('error', reject);
      req.write('one,');
      // The rest is sent only once the app has the first part: the proxy does not wait for the whole body.
      void arrived.then(() => {
        req.write('two,');
        req.end('three');
      });
    });
    assert.equal(answer.body, 'got one,two,three');
    assert.equal(answer.sawTe, 'chunked');
    assert.equal(answer.te, 'chunked');
  } finally {
    await rig.close();
  }
});

test('HEAD, 204 and 304 answers carry no body and keep the connection usable', async () => {
  const rig = await startRig({
    upstreams: [
      (req, res) => {
        if (req.url === '/204') {
          res.writeHead(204);
          res.end();
        } else if (req.url === '/304') {
          res.writeHead(304, { etag: '"x"' });
          res.end();
        } else {
          res.writeHead(200, { 'content-length': '11', 'content-type': 'text/plain' });
          res.end(req.method === 'HEAD' ? undefined : 'hello world');
        }
      },
    ],
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const head = await request(rig.port, { method: 'HEAD', agent });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '11');
    assert.equal(head.body.length, 0);
    const noContent = await request(rig.port, { path: '/204', agent });
    assert.equal(noContent.status, 204);
    assert.equal(noContent.body.length, 0);
    const notModified = await request(rig.port, { path: '/304', agent });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers.etag, '"x"');
    const get = await request(rig.port, { agent });
    assert.equal(get.body.toString(), 'hello world');
    assert.ok(get.reusedSocket);
  } finally {
    agent.destroy();
    await rig.close();
  }
});

test('Expect: 100-continue gets 100 Continue once a process is found, and the body goes through', async () => {
  const rig = await startRig({ upstreams: [echo] });
  try {
    const result = await new Promise<{ continued: boolean; body: { body: string; headers: Record<string, string> } }>((resolve, reject) => {
      let continued = false;
      const req = http.request({
        host: '127.0.0.1',
        port: rig.port,
        method: 'POST',
        path: '/',
        agent: false,
        headers: { expect: '100-continue', 'content-length': '5' },
      });
      req.on('continue', () => {
        continued = true;
        req.end('hello');
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ continued, body: JSON.parse(body) as { body: string; headers: Record<string, string> } }));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.ok(result.continued);
    assert.equal(result.body.body, 'hello');
    assert.equal(result.body.headers['expect'], undefined, 'the proxy answered Expect itself');
  } finally {
    await rig.close();
  }
});

test('X-Forwarded-* are set, hop-by-hop headers are removed both ways, and end-to-end ones pass', async () => {
  const rig = await startRig({
    upstreams: [
      (req, res) => {
        res.writeHead(200, [
          'Content-Type', 'application/json',
          'Connection', 'keep-alive, X-App-Hop',
          'Keep-Alive', 'timeout=5',
          'X-App-Hop', 'secret',
          'Set-Cookie', 'a=1',
          'Set-Cookie', 'b=2',
          'Proxy-Authenticate', 'Basic',
          'Trailer', 'X-Sum',
        ]);
        res.end(JSON.stringify(req.headers));
      },
    ],
  });
  try {
    const answer = await rawExchange(
      rig.port,
      [
        'GET / HTTP/1.1',
        'Host: example.test',
        'Connection: close, X-Visitor-Hop',
        'Keep-Alive: timeout=30',
        'X-Visitor-Hop: drop me',
        'TE: trailers',
        'Trailer: X-Sum',
        'Proxy-Authorization: Basic Zm9vOmJhcg==',
        'Proxy: http://evil.test',
        'X-Forwarded-For: 203.0.113.7',
        'X-Custom: kept',
        'Authorization: Bearer kept',
        '',
        '',
      ].join('\r\n'),
    );
    const [head, body] = answer.split('\r\n\r\n') as [string, string];
    const lines = head.split('\r\n').slice(1);
    const values = (name: string): string[] =>
      lines.filter((l) => l.toLowerCase().startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trim());
    const res = { headers: { 'x-app-hop': values('x-app-hop')[0], 'keep-alive': values('keep-alive')[0], 'proxy-authenticate': values('proxy-authenticate')[0], trailer: values('trailer')[0], 'set-cookie': values('set-cookie') } };
    const seen = JSON.parse(body.includes('{') ? body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1) : '{}') as Record<string, string>;
    assert.equal(seen['connection'], 'keep-alive', "the proxy's own connection header, not the visitor's");
    for (const hop of ['keep-alive', 'x-visitor-hop', 'te', 'trailer', 'proxy-authorization', 'proxy', 'transfer-encoding', 'upgrade']) {
      assert.equal(seen[hop], undefined, `${hop} must not reach the app`);
    }
    assert.equal(seen['x-custom'], 'kept');
    assert.equal(seen['authorization'], 'Bearer kept');
    assert.equal(seen['host'], 'example.test');
    assert.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'example.test');
    assert.equal(res.headers['x-app-hop'], undefined);
    assert.equal(res.headers['keep-alive'], undefined);
    assert.equal(res.headers['proxy-authenticate'], undefined);
    assert.equal(res.headers['trailer'], undefined);
    assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
  } finally {
    await rig.close();
  }
});

test('an X-Forwarded-Proto and -Host set by a load balancer in front are kept', async () => {
  const rig = await startRig({ upstreams: [(req, res) => res.end(JSON.stringify(req.headers))] });
  try {
    const res = await request(rig.port, { headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'www.example.test' } });
    const seen = JSON.parse(res.body.toString()) as Record<string, string>;
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-forwarded-host'], 'www.example.test');
  } finally {
    await rig.close();
  }
});

test('a valid incoming request id is kept, an invalid or missing one replaced, on the app request and the answer', async () => {
  const rig = await startRig({ upstreams: [(req, res) => res.end(String(req.headers['x-request-id']))] });
  try {
    const kept = await request(rig.port, { headers: { 'x-request-id': 'lb-1234.abc' } });
    assert.equal(kept.body.toString(), 'lb-1234.abc');
    assert.equal(kept.headers['x-request-id'], 'lb-1234.abc');

    const generated = await request(rig.port);
    assert.match(generated.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/);
    assert.equal(generated.body.toString(), generated.headers['x-request-id']);

    const replaced = await request(rig.port, { headers: { 'x-request-id': 'bad id <script>' } });
    assert.notEqual(replaced.headers['x-request-id'], 'bad id <script>');
    assert.equal(replaced.body.toString(), replaced.headers['x-request-id']);
  } finally {
    await rig.close();
  }
});

test('the request id header name can be configured', async () => {
  const rig = await startRig({ requestIdHeader: 'X-Trace-Id', upstreams: [(req, res) => res.end(String(req.headers['x-trace-id']))] });
  try {
    const res = await request(rig.port, { headers: { 'x-trace-id': 'trace-1' } });
    assert.equal(res.body.toString(), 'trace-1');
    assert.equal(res.headers['x-trace-id'], 'trace-1');
    assert.equal(res.headers['x-request-id'], undefined);
  } finally {
    await rig.close();
  }
});

test('closeUpstream closes idle upstream connections and keeps none to that target afterwards', async () => {
  const rig = await startRig({ upstreams: [(_req, res) => res.end('ok')] });
  try {
    await request(rig.port);
    const upstream = rig.upstreams[0]!;
    assert.equal(upstream.openConnections(), 1, 'the upstream connection is kept alive');
    rig.proxy.closeUpstream(upstream.target);
    await eventually(() => upstream.openConnections() === 0, 2_000, 'the idle connection to close');
    const after = await request(rig.port);
    assert.equal(after.body.toString(), 'ok');
    await eventually(() => upstream.openConnections() === 0, 2_000, 'the one-off connection to close');
    assert.equal(upstream.connections(), 2);
  } finally {
    await rig.close();
  }
});

test('close lets an in-flight request finish, then resolves; a second close is the same', async () => {
  let release: (() => void) | null = null;
  const rig = await startRig({
    upstreams: [
      (_req, res) => {
        res.write('part one, ');
        release = () => res.end('part two');
      },
    ],
  });
  const pending = request(rig.port);
  await eventually(() => release !== null, 2_000, 'the app to get the request');
  assert.equal(rig.proxy.inFlight(), 1);
  const closing = rig.proxy.close(5_000);
  const again = rig.proxy.close(5_000);
  setTimeout(() => release!(), 50);
  const res = await pending;
  assert.equal(res.body.toString(), 'part one, part two');
  await closing;
  await again;
  assert.equal(rig.proxy.inFlight(), 0);
  assert.equal(rig.sessions.open(), 0);
  await assert.rejects(request(rig.port), /ECONNREFUSED/);
  await rig.close();
});

test('close destroys what is still running after the grace period', async () => {
  const rig = await startRig({ upstreams: [(_req, res) => res.write('never ends')] });
  const pending = request(rig.port).then(
    () => assert.fail('the request cannot complete'),
    (error: Error) => error,
  );
  await eventually(() => rig.upstreams[0]!.requests.length === 1, 2_000, 'the app to get the request');
  const started = Date.now();
  await rig.proxy.close(200);
  assert.ok(Date.now() - started < 2_000);
  assert.match((await pending).message, /aborted|socket hang up|ECONNRESET/);
  await rig.sessions.closedCount(1);
  assert.equal(rig.sessions.open(), 0);
  await rig.close();
});

test('listen reports an address in use as one HF_LISTEN line naming it', async () => {
  const blocker = net.createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const port = (blocker.address() as net.AddressInfo).port;
  const rig = await startRig({ upstreams: [] });
  try {
    const proxy = createProxy({ sessions: rig.sessions, environment: 'production', logger: silentLogger() });
    await assert.rejects(proxy.listen(port, '127.0.0.1'), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'HF_LISTEN');
      assert.equal(error.message, `cannot listen on 127.0.0.1:${port}: the address is already in use (is another server running on this port?)`);
      assert.ok(!error.message.includes('\n'));
      return true;
    });
    await proxy.close(0);
  } finally {
    blocker.close();
    await rig.close();
  }
});

test('the readiness path is answered by the proxy itself: 200 while ready, 503 when not, and refused once stopping', async () => {
  let ready = true;
  let held: (() => void) | null = null;
  const rig = await startRig({
    upstreams: [(req, res) => (req.url === '/hold' ? (held = () => res.end('held')) : res.end('app'))],
    readiness: { path: '/_ready', ready: () => ready },
  });
  try {
    const ok = await request(rig.port, { path: '/_ready' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'ready\n');
    assert.equal(rig.sessions.closed.length, 0, 'no session was taken: the app never saw it');
    assert.equal((await request(rig.port, { path: '/_ready?x=1' })).body.toString(), 'app', 'only the exact path');
    ready = false;
    const down = await request(rig.port, { path: '/_ready' });
    assert.equal(down.status, 503);
    assert.equal(down.body.toString(), 'not ready\n');
    ready = true;
    // Stopping: in-flight requests finish, but a load balancer's probe finds the port closed.
    const inflight = request(rig.port, { path: '/hold' });
    await eventually(() => held !== null, 2_000, 'the app to hold a request');
    const closing = rig.proxy.close(5_000);
    await assert.rejects(request(rig.port, { path: '/_ready' }), /ECONNREFUSED/);
    held!();
    assert.equal((await inflight).body.toString(), 'held');
    await closing;
  } finally {
    await rig.close();
  }
});
