// holdfast's upstream client against real servers on Unix sockets: framing, keep-alive policy,
// the keep-alive race, back-pressure and failures.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { TargetPool, UPSTREAM_INVALID, type ExchangeHandler, type ExchangeRequest } from '../../../src/proxy/upstream-client';
import type { UpstreamTarget } from '../../../src/core/process-handle';
import { eventually, rawServer } from '../../helpers/proxy-fakes';

interface Result {
  status: number;
  headers: string[];
  body: string;
  informational: number[];
  sent: boolean;
}

function exchange(pool: TargetPool, request: Partial<ExchangeRequest> & { path?: string }, options: { pauseFirstMs?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let headers: string[] = [];
    const informational: number[] = [];
    let sent = false;
    let paused = false;
    let resume: () => void = () => undefined;
    const handler: ExchangeHandler = {
      onConnect: () => undefined,
      onRequestSent: () => {
        sent = true;
      },
      onHeaders: (statusCode, raw, resumeResponse) => {
        if (statusCode < 200) informational.push(statusCode);
        else {
          status = statusCode;
          headers = raw;
          resume = resumeResponse;
        }
        return true;
      },
      onData: (chunk) => {
        chunks.push(Buffer.from(chunk));
        if (options.pauseFirstMs !== undefined && !paused) {
          paused = true;
          setTimeout(resume, options.pauseFirstMs);
          return false;
        }
        return true;
      },
      onComplete: () => resolve({ status, headers, body: Buffer.concat(chunks).toString(), informational, sent }),
      onError: reject,
    };
    pool.dispatch({ method: 'GET', path: '/', headers: [], body: null, reset: false, ...request }, handler);
  });
}

function header(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) return headers[i + 1];
  return undefined;
}

/** An http server on a Unix socket that numbers its connections and says which one answered. */
async function numberedServer(t: { after(fn: () => unknown): void }, handle?: (req: http.IncomingMessage, res: http.ServerResponse, connection: number) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'hf-upstream-'));
  const socketPath = join(dir, 'app.sock');
  let connections = 0;
  const ids = new WeakMap<net.Socket, number>();
  const server = http.createServer((req, res) => {
    const id = ids.get(req.socket)!;
    if (handle) return handle(req, res, id);
    req.resume();
    req.on('end', () => res.end(`connection ${id}`));
  });
  server.keepAliveTimeout = 10_000;
  server.on('connection', (socket: net.Socket) => ids.set(socket, ++connections));
  server.listen(socketPath);
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  return { socketPath, connections: () => connections, server };
}

/** A pool to `app`: a Unix socket path, or a target. */
function poolFor(app: string | UpstreamTarget, t: { after(fn: () => unknown): void }, idleTimeoutMs = 4_000): TargetPool {
  const pool = new TargetPool(typeof app === 'string' ? { kind: 'unix', socketPath: app } : app, idleTimeoutMs);
  t.after(() => pool.destroy());
  return pool;
}

test('sequential requests reuse one kept-alive connection', async (t) => {
  const app = await numberedServer(t);
  const pool = poolFor(app.socketPath, t);
  for (let i = 0; i < 5; i++) {
    const r = await exchange(pool, {});
    assert.equal(r.status, 200);
    assert.equal(r.body, 'connection 1');
    assert.equal(r.sent, true);
  }
  assert.equal(app.connections(), 1);
  assert.deepEqual(pool.stats, { connected: 1, running: 0 });
});

test('the connection answered last is the next one used (a single-threaded server waits on it)', async (t) => {
  let releaseFirst: () => void = () => undefined;
  const app = await numberedServer(t, (req, res, id) => {
    req.resume();
    if (req.url === '/slow') releaseFirst = () => res.end(`connection ${id}`);
    else res.end(`connection ${id}`);
  });
  const pool = poolFor(app.socketPath, t);
  const slow = exchange(pool, { path: '/slow' });
  await new Promise((r) => setTimeout(r, 50));
  const fast = await exchange(pool, {});
  assert.equal(fast.body, 'connection 2');
  releaseFirst();
  assert.equal((await slow).body, 'connection 1');
  // Connection 1 finished last: it is on top.
  assert.equal((await exchange(pool, {})).body, 'connection 1');
  assert.equal((await exchange(pool, {})).body, 'connection 1');
  assert.equal(app.connections(), 2);
});

/**
 * A server that serves one connection at a time, as a blocking HTTP/1.1 server does: after each answer
 * it waits on the same connection for the next request, for as long as that connection stays open,
 * and only then reads the next connection (the others wait unread, as in an accept queue).
 */
async function oneConnectionAtATime(t: { after(fn: () => unknown): void }, firstAnswerAfterMs = 0) {
  const waiting: net.Socket[] = [];
  let current: net.Socket | null = null;
  let answered = 0;
  /** How each connection the server left ended: 'closed by the client' is the only way here. */
  const left: string[] = [];
  const serveNext = (): void => {
    current = waiting.shift() ?? null;
    if (current === null) return;
    const socket = current;
    socket.on('data', () => {
      const answer = (): void => {
        answered++;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${String(answered).length}\r\n\r\n${answered}`);
      };
      if (answered === 0 && firstAnswerAfterMs > 0) setTimeout(answer, firstAnswerAfterMs);
      else answer();
    });
    socket.once('end', () => {
      left.push('closed by the client');
      socket.end();
      serveNext();
    });
    socket.resume();
  };
  const app = await rawServer(t, (socket) => {
    socket.pause();
    waiting.push(socket);
    if (current === null) serveNext();
  });
  return { ...app, left };
}

test('requests that find every connection busy wait for one: a server that serves one connection at a time answers them all on the one it just answered', async (t) => {
  const app = await oneConnectionAtATime(t);
  const pool = poolFor(app.target, t);
  const results = await Promise.all([1, 2, 3, 4, 5].map(() => exchange(pool, {})));
  assert.deepEqual(results.map((r) => r.body).sort(), ['1', '2', '3', '4', '5']);
  assert.equal(app.connections(), 1);
  assert.equal(pool.closedForSilence, 0);
});

test('a server that serves many at once gets more connections when its requests wait', async (t) => {
  // Each of three requests is answered only once all three have arrived: on one connection they never would.
  const held: Array<() => void> = [];
  const app = await numberedServer(t, (req, res, id) => {
    req.resume();
    held.push(() => res.end(`connection ${id}`));
    if (held.length === 3) for (const answer of held.splice(0)) answer();
  });
  const pool = poolFor(app.socketPath, t);
  const results = await Promise.all([exchange(pool, {}), exchange(pool, {}), exchange(pool, {})]);
  assert.deepEqual(results.map((r) => r.body).sort(), ['connection 1', 'connection 2', 'connection 3']);
  assert.deepEqual(pool.stats, { connected: 3, running: 0 });
});

test('an app that waits on an idle connection while requests wait unread on others: the idle one is closed so that it moves on', async (t) => {
  // The first answer takes longer than requests wait for a connection: the two others go on
  // connections of their own, unread. Then the server answers the first and waits on it (for ever);
  // the two others are answered only because the pool closes the connection it does not use.
  const app = await oneConnectionAtATime(t, 100);
  const pool = poolFor(app.target, t);
  const results = await Promise.all([exchange(pool, {}), exchange(pool, {}), exchange(pool, {})]);
  assert.deepEqual(results.map((r) => r.body).sort(), ['1', '2', '3']);
  assert.equal(app.connections(), 3);
  assert.ok(pool.closedForSilence >= 2, `idle connections closed for silence: ${pool.closedForSilence}`);
  assert.deepEqual(app.left, ['closed by the client', 'closed by the client']);
  // The last one answered stays: with nothing waiting, an idle connection is not closed.
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(pool.stats, { connected: 1, running: 0 });
  assert.equal((await exchange(pool, {})).body, '4');
});

test('an idle connection stays open while the only other exchange is a response under way', async (t) => {
  let finish: () => void = () => undefined;
  const app = await numberedServer(t, (req, res, id) => {
    req.resume();
    if (req.url === '/stream') {
      res.write('first part ');
      finish = () => res.end(`connection ${id}`);
    } else res.end(`connection ${id}`);
  });
  const pool = poolFor(app.socketPath, t);
  let streamed: Promise<Result> | undefined;
  await new Promise<void>((resolve) => {
    streamed = exchange(pool, { path: '/stream' });
    setTimeout(resolve, 30);
  });
  assert.equal((await exchange(pool, {})).body, 'connection 2');
  // The app sends nothing for a while, but no request waits for an answer: nothing to move on from.
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(pool.stats, { connected: 2, running: 1 });
  assert.equal(pool.closedForSilence, 0);
  finish();
  assert.equal((await streamed!).body, 'first part connection 1');
});

test('an app that closes after each response: every request on a new connection, the next one opened while it is served', async (t) => {
  const app = await numberedServer(t, (req, res, id) => {
    req.resume();
    res.setHeader('connection', 'close');
    res.end(`connection ${id}`);
  });
  const pool = poolFor(app.socketPath, t);
  assert.equal((await exchange(pool, {})).body, 'connection 1');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(pool.stats.connected, 0, 'the closed connection is gone');
  // From now on the pool knows: while request 2 is served on connection 2, connection 3 is opened for the next.
  assert.equal((await exchange(pool, {})).body, 'connection 2');
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(pool.stats, { connected: 1, running: 0 }, 'one connection waits for the next request');
  assert.equal((await exchange(pool, {})).body, 'connection 3');
  assert.equal((await exchange(pool, {})).body, 'connection 4');
  assert.equal(app.connections(), 5);
});

test('a connection opened ahead that the app closed meanwhile: the request goes on a fresh one', async (t) => {
  // Each connection answers one request with Connection: close; a connection left waiting is closed by the app.
  const app = await rawServer(t, (socket, index) => {
    const idle = setTimeout(() => socket.destroy(), 30);
    socket.once('data', () => {
      clearTimeout(idle);
      socket.end(`HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n${index}`);
    });
  });
  const pool = poolFor(app.target, t);
  assert.equal((await exchange(pool, {})).body, '0');
  assert.equal((await exchange(pool, {})).body, '1'); // and connection 2 opened ahead
  await new Promise((r) => setTimeout(r, 80)); // the app closed it
  const r = await exchange(pool, {});
  assert.equal(r.status, 200);
});

test('a reused connection the app closed as the request was written: the request goes once more on a fresh one', async (t) => {
  // Every connection answers its first request and then closes, without saying so, as the next arrives.
  const app = await rawServer(t, (socket, index) => {
    let requests = 0;
    socket.on('data', () => {
      if (++requests === 1) socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n${index}`);
      else socket.destroy();
    });
  });
  const pool = poolFor(app.target, t);
  assert.equal((await exchange(pool, {})).body, '0');
  assert.equal((await exchange(pool, {})).body, '1');
  assert.equal(app.connections(), 2);
});

test('a request with a streamed body is not sent twice after a keep-alive race: the failure is reported', async (t) => {
  const app = await rawServer(t, (socket) => {
    let requests = 0;
    socket.on('data', () => {
      if (++requests === 1) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      else socket.destroy();
    });
  });
  const pool = poolFor(app.target, t);
  assert.equal((await exchange(pool, {})).body, 'ok');
  await assert.rejects(exchange(pool, { method: 'POST', body: Readable.from([Buffer.from('abc')]) }), (error: NodeJS.ErrnoException) => typeof error.code === 'string');
});

/** Every connection answers its first request and closes on the next; `seen` has the method of every request read. */
async function closesOnSecondRequest(t: { after(fn: () => unknown): void }) {
  const seen: string[] = [];
  const sockets: net.Socket[] = [];
  const app = await rawServer(t, (socket, index) => {
    sockets.push(socket);
    let requests = 0;
    socket.on('data', (data) => {
      seen.push(data.toString('latin1').split(' ')[0]!);
      if (++requests === 1) socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n${index}`);
      else socket.destroy();
    });
  });
  return { app, seen, sockets };
}

for (const method of ['POST', 'PATCH']) {
  test(`a ${method} (not idempotent) the app read on a reused connection and then closed it unanswered is not sent again`, async (t) => {
    const { app, seen } = await closesOnSecondRequest(t);
    const pool = poolFor(app.target, t);
    assert.equal((await exchange(pool, {})).body, '0');
    await assert.rejects(exchange(pool, { method, body: Buffer.from('charge once') }), (error: NodeJS.ErrnoException) => error.code === 'UPSTREAM_CLOSED');
    assert.deepEqual(seen, ['GET', method]);
    assert.equal(app.connections(), 1);
  });
}

test('a PUT (idempotent) the app read on a reused connection and then closed unanswered goes once more on a fresh one', async (t) => {
  const { app, seen } = await closesOnSecondRequest(t);
  const pool = poolFor(app.target, t);
  assert.equal((await exchange(pool, {})).body, '0');
  assert.equal((await exchange(pool, { method: 'PUT', body: Buffer.from('same twice') })).body, '1');
  assert.deepEqual(seen, ['GET', 'PUT', 'PUT']);
});

test('a POST that could not be written at all (the app had closed the reused connection) goes on a fresh one', async (t) => {
  const { app, seen, sockets } = await closesOnSecondRequest(t);
  const pool = poolFor(app.target, t);
  assert.equal((await exchange(pool, {})).body, '0');
  // The app closes the idle connection; the request is written before holdfast could read the end.
  sockets[0]!.destroy();
  assert.equal((await exchange(pool, { method: 'POST', body: Buffer.from('once') })).body, '1');
  assert.deepEqual(seen, ['GET', 'POST']);
});

test('a streamed body that is destroyed while its request waits for a busy connection: the request fails unsent, the connection serves the next', async (t) => {
  const app = await numberedServer(t, (req, res, id) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.end(`${req.url} on ${id}`), req.url === '/slow' ? 100 : 0));
  });
  const pool = poolFor(app.socketPath, t);
  const slow = exchange(pool, { path: '/slow' });
  const body = new Readable({ read: () => undefined });
  const upload = exchange(pool, { method: 'POST', path: '/upload', body });
  body.destroy(new Error('the visitor went away'));
  await assert.rejects(upload, /the visitor went away/);
  assert.equal((await slow).body, '/slow on 1');
  assert.equal((await exchange(pool, { path: '/next' })).body, '/next on 1');
  assert.equal(app.connections(), 1);
});

test('a body delimited by the end of the connection (HTTP/1.0 style) arrives whole', async (t) => {
  const app = await rawServer(t, (socket) => {
    socket.once('data', () => {
      socket.end('HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it, until EOF');
    });
  });
  const pool = poolFor(app.target, t);
  const r = await exchange(pool, {});
  assert.equal(r.body, 'all of it, until EOF');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(pool.stats.connected, 0);
});

test('chunked both ways: a streamed request body without a length goes chunked, a chunked response is decoded', async (t) => {
  const app = await numberedServer(t, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      res.write(`te=${req.headers['transfer-encoding']} `);
      res.write(Buffer.concat(parts));
      res.end(' done');
    });
  });
  const pool = poolFor(app.socketPath, t);
  const r = await exchange(pool, { method: 'POST', body: Readable.from([Buffer.from('one,'), Buffer.from('two')]) });
  assert.equal(r.body, 'te=chunked one,two done');
  assert.equal(header(r.headers, 'transfer-encoding'), 'chunked');
  // And the connection is fit for the next request.
  assert.equal((await exchange(pool, { method: 'POST', headers: ['content-length', '3'], body: Readable.from([Buffer.from('xyz')]) })).body, 'te=undefined xyz done');
  assert.equal(pool.stats.connected, 1);
});

test('HEAD: the Content-Length of the answer has no body behind it, and the connection is reused', async (t) => {
  const app = await numberedServer(t, (req, res, id) => {
    res.writeHead(200, { 'content-length': 1000 });
    res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1000));
    void id;
  });
  const pool = poolFor(app.socketPath, t);
  const r = await exchange(pool, { method: 'HEAD' });
  assert.equal(r.status, 200);
  assert.equal(r.body, '');
  assert.equal((await exchange(pool, {})).body.length, 1000);
  assert.equal(app.connections(), 1);
});

test('1xx answers (103 Early Hints) come before the response on the same connection', async (t) => {
  const app = await numberedServer(t, (req, res) => {
    req.resume();
    res.writeEarlyHints({ link: '</style.css>; rel=preload' });
    res.end('after hints');
  });
  const pool = poolFor(app.socketPath, t);
  const r = await exchange(pool, {});
  assert.deepEqual(r.informational, [103]);
  assert.equal(r.status, 200);
  assert.equal(r.body, 'after hints');
});

for (const extraHeaders of [0, 40]) {
  test(`trailers end with their response: the next response on the connection (${extraHeaders} more headers) does not get them`, async (t) => {
    const app = await numberedServer(t, (req, res) => {
      req.resume();
      if (req.url === '/trailers') {
        res.writeHead(200, { 'transfer-encoding': 'chunked', trailer: 'x-secret' });
        res.write('body');
        res.addTrailers({ 'x-secret': 'first visitor only' });
        res.end();
        return;
      }
      // Past 32 headers Node's parser hands them over in pieces (kOnHeaders), as for a head split across reads.
      for (let i = 0; i < extraHeaders; i++) res.setHeader(`x-more-${i}`, String(i));
      res.end('plain');
    });
    const pool = poolFor(app.socketPath, t);
    assert.equal((await exchange(pool, { path: '/trailers' })).body, 'body');
    const next = await exchange(pool, { path: '/plain' });
    assert.equal(next.body, 'plain');
    assert.equal(header(next.headers, 'x-secret'), undefined);
    assert.equal(next.headers.length / 2, extraHeaders + 4, next.headers.join(' '));
    assert.equal(app.connections(), 1);
  });
}

test('an invalid response is an error with its code, and its connection is not reused', async (t) => {
  const app = await rawServer(t, (socket) => {
    socket.once('data', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
  });
  const pool = poolFor(app.target, t);
  await assert.rejects(exchange(pool, {}), (error: NodeJS.ErrnoException) => error.code === UPSTREAM_INVALID);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(pool.stats.connected, 0);
});

for (const [what, answer, said] of [
  ['two Content-Length headers that disagree', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc', /Duplicate Content-Length \(HPE_UNEXPECTED_CONTENT_LENGTH\)/],
  ['a header larger than the parser takes', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(100_000)}\r\nContent-Length: 2\r\n\r\nok`, /\(HPE_HEADER_OVERFLOW\)/],
] as const) {
  test(`an invalid response says what the parser found in it: ${what}`, async (t) => {
    const app = await rawServer(t, (socket) => {
      socket.once('data', () => socket.write(answer));
    });
    const pool = poolFor(app.target, t);
    await assert.rejects(exchange(pool, {}), (error: NodeJS.ErrnoException) => error.code === UPSTREAM_INVALID && said.test(error.message));
  });
}

/**
 * A raw app that answers `/` with its connection's number and the other paths with a response that
 * has bytes after its end, in the same write or `laterMs` after it.
 */
async function overlongAnswers(t: { after(fn: () => unknown): void }, laterMs?: number) {
  const overlong: Record<string, [string, string]> = {
    // A body longer than its Content-Length (a length counted in characters, not bytes).
    'GET /long': ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked'],
    // A body after HEAD's headers, and after a 204's.
    'HEAD /': ['HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked'],
    'GET /204': ['HTTP/1.1 204 No Content\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked'],
    'GET /garbage': ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', ' w\u00f6rld'],
    // After an answer that closes the connection.
    'GET /closing': ['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked'],
  };
  return rawServer(t, (socket, index) => {
    let pending = '';
    socket.on('data', (data) => {
      pending += data.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
        const line = pending.slice(0, pending.indexOf(' HTTP/1.1'));
        pending = pending.slice(end + 4);
        const answer = overlong[line];
        if (answer === undefined) socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${index + 1}`);
        else if (laterMs === undefined) socket.write(answer[0] + answer[1], 'latin1');
        else {
          socket.write(answer[0], 'latin1');
          setTimeout(() => socket.write(answer[1], 'latin1'), laterMs);
        }
      }
    });
  });
}

const overlongRequests: Array<[string, Partial<ExchangeRequest>, string]> = [
  ['a body longer than its Content-Length', { path: '/long' }, 'hello'],
  ['a body after the headers of an answer to HEAD', { method: 'HEAD' }, ''],
  ['a body after a 204', { path: '/204' }, ''],
  ['bytes that are no HTTP at all', { path: '/garbage' }, 'hi'],
  ['an answer after one that closes the connection', { path: '/closing' }, 'hi'],
];

for (const [what, request, body] of overlongRequests) {
  test(`${what}: the bytes after the answer never reach the next request on the connection, which goes on a fresh one`, async (t) => {
    const app = await overlongAnswers(t);
    const pool = poolFor(app.target, t);
    const told: string[] = [];
    pool.onBytesAfterAnswer = (method, path) => told.push(`${method} ${path}`);
    // The second request waits for the first one's connection (one connection at a time to a process that has one).
    const [first, second] = await Promise.all([exchange(pool, request), exchange(pool, {})]);
    assert.equal(first.body, body);
    assert.deepEqual([second.status, second.body], [200, '2']);
    assert.equal(app.connections(), 2);
    // Told once, with the request whose answer they followed (the log line names it).
    assert.deepEqual(told, [`${request.method ?? 'GET'} ${request.path ?? '/'}`]);
    // The fresh connection is fit for more.
    assert.equal((await exchange(pool, {})).body, '2');
  });
}

test('bytes after an answer that come later, while the connection is idle: it is closed, the next request goes on a fresh one', async (t) => {
  const app = await overlongAnswers(t, 20);
  const pool = poolFor(app.target, t);
  const told: string[] = [];
  pool.onBytesAfterAnswer = (method, path) => told.push(`${method} ${path}`);
  assert.equal((await exchange(pool, { path: '/long' })).body, 'hello');
  await eventually(() => pool.stats.connected === 0, 2_000, 'the confused connection closed');
  assert.deepEqual(told, ['GET /long']);
  assert.deepEqual((await exchange(pool, {})).body, '2');
});

test('nobody listening: the socket error, with its code, before anything was sent', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-upstream-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pool = poolFor(join(dir, 'nobody.sock'), t);
  let sent = false;
  await assert.rejects(
    new Promise((resolve, reject) =>
      pool.dispatch({ method: 'GET', path: '/', headers: [], body: null, reset: false }, {
        onConnect: () => undefined,
        onRequestSent: () => (sent = true),
        onHeaders: () => true,
        onData: () => true,
        onComplete: () => resolve(undefined),
        onError: reject,
      }),
    ),
    (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
  );
  assert.equal(sent, false);
});

test('an app that answers before reading the whole upload (413): the answer arrives, the connection is not reused', async (t) => {
  const app = await numberedServer(t, (_req, res, id) => {
    res.writeHead(413, { connection: 'keep-alive', 'content-length': 3 });
    res.end(String(id).padEnd(3));
  });
  const pool = poolFor(app.socketPath, t);
  let pushed = 0;
  const endless = new Readable({
    read() {
      if (pushed++ < 10_000) this.push(Buffer.alloc(64 * 1024));
    },
  });
  const r = await exchange(pool, { method: 'POST', headers: ['content-length', String(10_000 * 64 * 1024)], body: endless });
  assert.equal(r.status, 413);
  assert.ok(endless.destroyed, 'the body stream is let go');
  const next = await exchange(pool, {});
  assert.equal(next.status, 413);
  assert.equal(app.connections(), 2);
});

test('back-pressure: a handler that says "wait" gets the rest after resume(), all of it', async (t) => {
  const size = 4 * 1024 * 1024;
  const app = await numberedServer(t, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-length': size });
    res.end(Buffer.alloc(size, 'a'));
  });
  const pool = poolFor(app.socketPath, t);
  const r = await exchange(pool, {}, { pauseFirstMs: 100 });
  assert.equal(r.body.length, size);
  assert.equal((await exchange(pool, {})).body.length, size);
  assert.equal(app.connections(), 1);
});

test('a request waiting for a connection: abort() ends it unsent; close() sends the others on new connections, and they are served', async (t) => {
  const held: Array<() => void> = [];
  const app = await numberedServer(t, (req, res, id) => {
    req.resume();
    if (req.url === '/slow') held.push(() => res.end(`connection ${id}`));
    else res.end(`connection ${id}`);
  });
  const pool = poolFor(app.socketPath, t);
  const slow = exchange(pool, { path: '/slow' });
  await new Promise((r) => setTimeout(r, 30));
  let abort: (error?: Error) => void = () => undefined;
  let sent = false;
  const aborted = new Promise<Error>((resolve) =>
    pool.dispatch({ method: 'GET', path: '/gone', headers: [], body: null, reset: false }, {
      onConnect: (a) => (abort = a),
      onRequestSent: () => (sent = true),
      onHeaders: () => true,
      onData: () => true,
      onComplete: () => undefined,
      onError: resolve,
    }),
  );
  const waiting = exchange(pool, {});
  abort(new Error('visitor gone'));
  assert.equal((await aborted).message, 'visitor gone');
  assert.equal(sent, false);
  const closing = pool.close();
  assert.equal((await waiting).body, 'connection 2', 'the waiting request went on a new connection, the aborted one on none');
  held[0]!();
  assert.equal((await slow).body, 'connection 1');
  await closing;
  assert.equal(app.connections(), 2);
  assert.equal(pool.stats.connected, 0);
});

test('abort() ends the exchange with the given error and closes its connection', async (t) => {
  const app = await numberedServer(t, (req) => {
    req.resume(); // never answers
  });
  const pool = poolFor(app.socketPath, t);
  let abort: (error?: Error) => void = () => undefined;
  const failed = new Promise<Error>((resolve) =>
    pool.dispatch({ method: 'GET', path: '/', headers: [], body: null, reset: false }, {
      onConnect: (a) => (abort = a),
      onRequestSent: () => undefined,
      onHeaders: () => true,
      onData: () => true,
      onComplete: () => undefined,
      onError: resolve,
    }),
  );
  await new Promise((r) => setTimeout(r, 50));
  abort(new Error('visitor gone'));
  assert.equal((await failed).message, 'visitor gone');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(pool.stats.connected, 0);
});

test('idle connections past the idle timeout, or past the Keep-Alive timeout the app announced, are not reused', async (t) => {
  const app = await numberedServer(t, (req, res, id) => {
    req.resume();
    if (req.url === '/announce') res.setHeader('keep-alive', 'timeout=1');
    res.end(`connection ${id}`);
  });
  const pool = poolFor(app.socketPath, t, 150);
  assert.equal((await exchange(pool, {})).body, 'connection 1');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await exchange(pool, {})).body, 'connection 2');
  // timeout=1 s, less the 1 s margin: never reused.
  const long = poolFor(app.socketPath, t, 60_000);
  assert.equal((await exchange(long, { path: '/announce' })).body, 'connection 3');
  assert.equal((await exchange(long, {})).body, 'connection 4');
});

test('close(): idle connections close now, a busy one after its exchange; no new exchange is taken', async (t) => {
  let finish: () => void = () => undefined;
  const app = await numberedServer(t, (req, res, id) => {
    req.resume();
    if (req.url === '/slow') finish = () => res.end(`connection ${id}`);
    else res.end(`connection ${id}`);
  });
  const pool = poolFor(app.socketPath, t);
  await exchange(pool, {});
  const slow = exchange(pool, { path: '/slow' });
  const other = exchange(pool, {});
  assert.equal((await other).body, 'connection 2');
  await new Promise((r) => setTimeout(r, 20));
  let closed = false;
  const closing = pool.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(closed, false);
  assert.equal(pool.stats.connected, 1);
  await assert.rejects(exchange(pool, {}), (error: NodeJS.ErrnoException) => error.code === 'UPSTREAM_POOL_CLOSED');
  finish();
  assert.equal((await slow).body, 'connection 1');
  await closing;
  assert.equal(pool.stats.connected, 0);
});
