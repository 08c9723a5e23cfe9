// What the proxy does when the app process, the visitor or the pool fails: the right status,
// sessions always closed once, and everyone else served as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { CapacityError, SpawnError } from '../../../src/errors';
import { connect, eventually, rawAnswer, request } from '../../helpers/proxy-fakes';
import { startRig } from '../../helpers/proxy-setup';

/** A tcp port on 127.0.0.1 where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const ok: http.RequestListener = (req, res) => {
  req.resume();
  req.on('end', () => res.end(`ok ${req.method}`));
};

/** A logger at level info whose lines are kept, parsed, for the test to look at. */
function capturedLog(): { lines: Array<Record<string, unknown>>; logger: pino.Logger } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  });
  return { lines, logger: pino({ level: 'info' }, sink) };
}

/** Reads what the proxy sends on a raw connection until it closes it (or timeoutMs passes). */
test('a GET whose process has no socket any more is retried once on another process', async () => {
  const rig = await startRig({ upstreams: [ok] });
  // pid 1000's Unix socket path is gone (ENOENT); pid 1001 is alive.
  rig.sessions.processes = [{ pid: 1000, target: { kind: 'unix', socketPath: join(rig.dir, 'gone.sock') } }, ...rig.sessions.processes];
  try {
    const res = await request(rig.port);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'ok GET');
    assert.deepEqual(rig.sessions.closed, [
      { pid: 1000, unreachable: true },
      { pid: 1001, unreachable: false },
    ]);
    assert.equal(rig.sessions.acquires[1]!.avoidPid, 1000);
    assert.equal(rig.sessions.acquires[1]!.signal, rig.sessions.acquires[0]!.signal, 'the retry still aborts when the visitor leaves');
    assert.deepEqual(rig.done, [{ statusCode: 200, durationMs: rig.done[0]!.durationMs, pid: 1001 }]);
  } finally {
    await rig.close();
  }
});

test('a HEAD whose process refuses the tcp connection is retried once on another process', async () => {
  const rig = await startRig({ upstreams: [ok], transport: 'tcp' });
  rig.sessions.processes = [{ pid: 1000, target: { kind: 'tcp', host: '127.0.0.1', port: await closedPort() } }, ...rig.sessions.processes];
  try {
    const res = await request(rig.port, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.deepEqual(rig.sessions.closed, [
      { pid: 1000, unreachable: true },
      { pid: 1001, unreachable: false },
    ]);
    assert.equal(rig.upstreams[0]!.requests[0]!.method, 'HEAD');
  } finally {
    await rig.close();
  }
});

test('a GET is retried only once: two unreachable processes give 502', async () => {
  const rig = await startRig({ upstreams: [] });
  rig.sessions.processes = [
    { pid: 1000, target: { kind: 'unix', socketPath: join(rig.dir, 'gone-1.sock') } },
    { pid: 1001, target: { kind: 'unix', socketPath: join(rig.dir, 'gone-2.sock') } },
  ];
  try {
    const res = await request(rig.port);
    assert.equal(res.status, 502);
    assert.equal(rig.sessions.acquires.length, 2);
    assert.deepEqual(rig.sessions.closed, [
      { pid: 1000, unreachable: true },
      { pid: 1001, unreachable: true },
    ]);
  } finally {
    await rig.close();
  }
});

test('a POST to a process that refuses is not retried: 502, session closed as unreachable', async () => {
  const rig = await startRig({ upstreams: [ok] });
  rig.sessions.processes = [{ pid: 1000, target: { kind: 'tcp', host: '127.0.0.1', port: await closedPort() } }, ...rig.sessions.processes];
  try {
    const res = await request(rig.port, { method: 'POST', body: 'data', headers: { accept: 'application/json' } });
    assert.equal(res.status, 502);
    const page = JSON.parse(res.body.toString()) as { error: { code: string; error_id: string; message: string } };
    assert.equal(page.error.code, 'HF_UPSTREAM');
    assert.match(page.error.error_id, /^[0-9a-f]{8}$/);
    assert.ok(!res.body.toString().includes('127.0.0.1'), 'production pages name no address');
    assert.equal(rig.sessions.acquires.length, 1);
    assert.deepEqual(rig.sessions.closed, [{ pid: 1000, unreachable: true }]);
    assert.equal(rig.upstreams[0]!.requests.length, 0);
    assert.equal(rig.done.at(-1)!.statusCode, 502);
  } finally {
    await rig.close();
  }
});

test('a process that resets the connection after it received the request: not retried, GET and POST answered 502 (a poison request kills one process, not two)', async () => {
  let seen = 0;
  const rig = await startRig({ upstreams: [(req) => { seen++; req.socket.destroy(); }, ok] });
  try {
    const get = await request(rig.port);
    assert.equal(get.status, 502);
    assert.deepEqual(rig.sessions.closed, [{ pid: 1001, unreachable: true }], 'the second process never saw it');
    assert.equal(seen, 1);
    rig.sessions.processes = rig.sessions.processes.slice(0, 1);
    const post = await request(rig.port, { method: 'POST', body: 'x' });
    assert.equal(post.status, 502);
    assert.deepEqual(rig.sessions.closed.at(-1), { pid: 1001, unreachable: true });
  } finally {
    await rig.close();
  }
});

test('a process that dies in the middle of a response cuts the visitor off, and nothing is retried', async () => {
  const rig = await startRig({
    upstreams: [
      (_req, res) => {
        res.writeHead(200, { 'content-length': '100' });
        res.write('only part of it');
        setTimeout(() => res.socket?.destroy(), 20);
      },
      ok,
    ],
  });
  try {
    await assert.rejects(request(rig.port), /aborted|ECONNRESET|socket hang up/);
    await rig.sessions.closedCount(1);
    assert.deepEqual(rig.sessions.closed, [{ pid: 1001, unreachable: false }]);
    assert.equal(rig.sessions.acquires.length, 1);
    rig.sessions.processes = rig.sessions.processes.slice(1);
    const next = await request(rig.port);
    assert.equal(next.body.toString(), 'ok GET', 'the next visitor is served');
  } finally {
    await rig.close();
  }
});

test('a visitor that disconnects mid-upload frees its session and does not disturb a concurrent request', async () => {
  let uploadAborted = false;
  const rig = await startRig({
    upstreams: [
      (req, res) => {
        if (req.url === '/upload') {
          req.on('data', () => undefined);
          req.on('close', () => {
            if (!req.complete) uploadAborted = true;
          });
          return;
        }
        setTimeout(() => res.end('slow but fine'), 200);
      },
    ],
  });
  try {
    const concurrent = request(rig.port, { path: '/other' });
    const upload = http.request({ host: '127.0.0.1', port: rig.port, method: 'POST', path: '/upload', agent: false, headers: { 'content-length': String(10 * 1024 * 1024) } });
    upload.on('error', () => undefined);
    upload.write(Buffer.alloc(256 * 1024, 1));
    await eventually(() => rig.upstreams[0]!.requests.some((r) => r.url === '/upload'), 2_000, 'the upload to reach the app');
    upload.destroy();
    await eventually(() => uploadAborted, 2_000, 'the app to see the upload aborted');
    const other = await concurrent;
    assert.equal(other.status, 200);
    assert.equal(other.body.toString(), 'slow but fine');
    await rig.sessions.closedCount(2);
    assert.equal(rig.sessions.open(), 0);
    assert.deepEqual(rig.sessions.doubleCloses, []);
    assert.ok(rig.sessions.closed.every((c) => !c.unreachable));
    await eventually(() => rig.done.length === 2, 2_000, 'both exchanges to be over');
    assert.deepEqual(rig.done.map((d) => d.statusCode).sort(), [200, 499]);
  } finally {
    await rig.close();
  }
});

test('a visitor that disconnects mid-upload while its request waits for a connection to a busy process: nothing breaks', async () => {
  // Before, the body's error ("the visitor went away") had no listener while the request waited
  // for the busy connection, and it took the whole proxy down.
  const rig = await startRig({
    upstreams: [
      (req, res) => {
        req.resume();
        req.on('end', () => setTimeout(() => res.end(`answered ${req.url}`), req.url === '/slow' ? 300 : 0));
      },
    ],
  });
  try {
    const slow = request(rig.port, { path: '/slow' });
    await eventually(() => rig.upstreams[0]!.requests.some((r) => r.url === '/slow'), 2_000, 'the slow request to reach the app');
    for (let i = 0; i < 5; i++) {
      const visitor = await connect(rig.port);
      visitor.on('error', () => undefined);
      // The head and a part of the body, then gone, all before the busy connection is free.
      visitor.write('POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n0123456789');
      visitor.destroy();
    }
    assert.equal((await slow).body.toString(), 'answered /slow');
    const after = await request(rig.port, { path: '/after' });
    assert.equal(after.body.toString(), 'answered /after');
    await eventually(() => rig.sessions.open() === 0, 2_000, 'every session closed');
    assert.deepEqual(rig.sessions.doubleCloses, []);
  } finally {
    await rig.close();
  }
});

for (const synchronous of [false, true]) {
  test(`a visitor that disconnects mid-response frees its session once and the app sees the connection end (${synchronous ? 'synchronous' : 'queued'} route)`, async () => {
    let appSawClose = false;
    const rig = await startRig({
      synchronous,
      upstreams: [
        (_req, res) => {
          const timer = setInterval(() => res.write('tick\n'), 10);
          res.on('close', () => {
            clearInterval(timer);
            appSawClose = true;
          });
        },
      ],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: rig.port, agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
      });
      await rig.sessions.closedCount(1);
      await eventually(() => appSawClose, 2_000, 'the app to see its response aborted');
      assert.equal(rig.proxy.inFlight(), 0);
      assert.deepEqual(rig.sessions.doubleCloses, []);
      assert.equal(rig.done[0]!.statusCode, 200, 'the answer had begun');
    } finally {
      await rig.close();
    }
  });
}

test('a visitor that goes away while queued aborts its acquire and never gets a session', async () => {
  const rig = await startRig({ upstreams: [ok] });
  rig.sessions.hold = true;
  try {
    const socket = await connect(rig.port);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => rig.sessions.acquires.length === 1, 2_000, 'the acquire');
    socket.destroy();
    await eventually(() => rig.sessions.aborted.length === 1, 2_000, 'the acquire to be aborted');
    rig.sessions.release();
    await eventually(() => rig.done.length === 1, 2_000, 'the exchange to end');
    assert.deepEqual(rig.done[0]!.statusCode, 499);
    assert.equal(rig.done[0]!.pid, null);
    assert.equal(rig.sessions.open(), 0);
    assert.equal(rig.upstreams[0]!.requests.length, 0);
  } finally {
    await rig.close();
  }
});

test('a slow client that never finishes its headers gets 408 and never reaches the pool', async () => {
  const rig = await startRig({ upstreams: [ok], headersTimeoutMs: 300 });
  try {
    const socket = await connect(rig.port);
    const started = Date.now();
    socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const answer = await rawAnswer(socket);
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.ok(Date.now() - started < 3_000, 'closed soon after the headers timeout');
    assert.equal(rig.sessions.acquires.length, 0);
    const next = await request(rig.port);
    assert.equal(next.status, 200, 'the server keeps serving');
  } finally {
    await rig.close();
  }
});

test('a client too slow to send its body hits the request timeout; the app request is aborted and the session freed', async () => {
  let appSawAbort = false;
  const rig = await startRig({
    requestTimeoutMs: 600,
    headersTimeoutMs: 300,
    upstreams: [
      (req) => {
        req.on('data', () => undefined);
        req.on('close', () => (appSawAbort = !req.complete));
      },
    ],
  });
  try {
    const socket = await connect(rig.port);
    socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfirst ten.');
    const answer = await rawAnswer(socket);
    assert.ok(answer === '' || /^HTTP\/1\.1 408 /.test(answer), `408 or closed, got ${JSON.stringify(answer.slice(0, 40))}`);
    await rig.sessions.closedCount(1);
    await eventually(() => appSawAbort, 2_000, 'the app to see the request aborted');
    assert.equal(rig.proxy.inFlight(), 0);
  } finally {
    await rig.close();
  }
});

test('malformed HTTP gets 400, oversized headers 431, and the server keeps serving', async () => {
  const rig = await startRig({ upstreams: [ok] });
  try {
    const garbage = await connect(rig.port);
    garbage.write('THIS IS NOT HTTP\r\n\r\n');
    assert.match(await rawAnswer(garbage), /^HTTP\/1\.1 400 /);

    const badHeader = await connect(rig.port);
    badHeader.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n');
    assert.match(await rawAnswer(badHeader), /^HTTP\/1\.1 400 /);

    const smuggle = await connect(rig.port);
    smuggle.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.match(await rawAnswer(smuggle), /^HTTP\/1\.1 400 /);

    const huge = await connect(rig.port);
    huge.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.match(await rawAnswer(huge), /^HTTP\/1\.1 431 /);

    assert.equal(rig.sessions.acquires.length, 0);
    const next = await request(rig.port);
    assert.equal(next.body.toString(), 'ok GET');
  } finally {
    await rig.close();
  }
});

test('a body in a transfer coding besides chunked: 501 when chunked is last (the app would get it still coded), 400 when not; plain chunked goes through', async () => {
  const echo: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`got ${Buffer.concat(chunks).toString()}`));
  };
  const rig = await startRig({ upstreams: [echo] });
  try {
    for (const [codings, answer] of [
      ['gzip, chunked', /^HTTP\/1\.1 501 Not Implemented\r\n[^]*connection: close\r\n[^]*only chunked/i],
      ['identity, chunked', /^HTTP\/1\.1 501 /],
      ['gzip', /^HTTP\/1\.1 400 /],
    ] as const) {
      const socket = await connect(rig.port);
      socket.write(`POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${codings}\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`);
      const raw = await rawAnswer(socket);
      assert.match(raw, answer, codings);
      assert.equal(raw.match(/HTTP\/1\.1 /g)!.length, 1, `${codings}: one answer, then the connection closes`);
    }
    assert.equal(rig.upstreams[0]!.requests.length, 0, 'none reached the app');
    const chunked = await connect(rig.port);
    chunked.write('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.match(await rawAnswer(chunked), /^HTTP\/1\.1 200 [^]*got hello$/);
  } finally {
    await rig.close();
  }
});

test('a full queue answers 503 with Retry-After; shutting down answers 503; the page carries the request id', async () => {
  const rig = await startRig({ upstreams: [ok] });
  try {
    rig.sessions.failWith = [new CapacityError('HF_QUEUE_FULL', 'the request queue is full (100 waiting)')];
    const full = await request(rig.port, { headers: { 'x-request-id': 'req-1' } });
    assert.equal(full.status, 503);
    assert.equal(full.headers['retry-after'], '5');
    assert.equal(full.headers['x-request-id'], 'req-1');
    assert.equal(full.headers['cache-control'], 'no-store');
    assert.match(full.headers['content-type'] as string, /^text\/html/);
    assert.ok(!full.body.toString().includes('100 waiting'), 'production pages do not repeat internal messages');

    rig.sessions.failWith = [new CapacityError('HF_SHUTTING_DOWN', 'holdfast is stopping')];
    const stopping = await request(rig.port, { headers: { accept: 'application/json' } });
    assert.equal(stopping.status, 503);
    assert.equal((JSON.parse(stopping.body.toString()) as { error: { code: string } }).error.code, 'HF_SHUTTING_DOWN');
    assert.equal(rig.sessions.open(), 0);
  } finally {
    await rig.close();
  }
});

const spawnError = (): SpawnError =>
  new SpawnError('app exited with code 1 before it listened', {
    category: 'exited',
    errorId: 'abcd1234',
    command: 'node /srv/app/releases/42/server.js',
    exitCode: 1,
    signal: null,
    outputTail: ['Error: Cannot find module \'express\'', '    at /srv/app/releases/42/server.js:1:1', '<b>not bold</b>'],
    release: '/srv/app/releases/42',
    generation: 3,
    at: 0,
  });

test('a spawn error shows a plain 503 page with its error id in production, HTML and JSON', async () => {
  const rig = await startRig({ upstreams: [ok] });
  try {
    rig.sessions.failWith = [spawnError(), spawnError()];
    const html = await request(rig.port);
    assert.equal(html.status, 503);
    const text = html.body.toString();
    assert.ok(text.includes('abcd1234'));
    for (const leak of ['/srv/app', 'node ', 'Cannot find module', 'express', ' at ', 'exited with code']) {
      assert.ok(!text.includes(leak), `production page leaks ${JSON.stringify(leak)}`);
    }
    const json = await request(rig.port, { headers: { accept: 'application/json' } });
    assert.equal(json.status, 503);
    assert.deepEqual(JSON.parse(json.body.toString()), {
      error: { code: 'HF_SPAWN_EXITED', message: 'The web application could not be started. Please try again later.', error_id: 'abcd1234' },
    });
  } finally {
    await rig.close();
  }
});

test('a spawn error in development shows cause, exit code, command and output, escaped', async () => {
  const rig = await startRig({ upstreams: [ok], environment: 'development' });
  try {
    rig.sessions.failWith = [spawnError(), spawnError()];
    const html = (await request(rig.port)).body.toString();
    assert.ok(html.includes('app exited with code 1 before it listened'));
    assert.ok(html.includes('node /srv/app/releases/42/server.js'));
    assert.ok(html.includes('Cannot find module &#39;express&#39;'));
    assert.ok(html.includes('&lt;b&gt;not bold&lt;/b&gt;'));
    assert.ok(!html.includes('<b>not bold</b>'));
    assert.match(html, /Exit code<\/th><td><code>1</);
    assert.ok(html.includes('abcd1234'));
    const json = JSON.parse((await request(rig.port, { headers: { accept: 'application/json' } })).body.toString()) as {
      error: Record<string, unknown>;
    };
    assert.equal(json.error['error_id'], 'abcd1234');
    assert.equal(json.error['command'], 'node /srv/app/releases/42/server.js');
    assert.equal(json.error['exit_code'], 1);
    assert.equal(json.error['category'], 'exited');
    assert.deepEqual(json.error['output'], spawnError().details.outputTail);
  } finally {
    await rig.close();
  }
});

test('the error id on a page is in the log line too, with the code and the details the page hides', async () => {
  const { lines, logger } = capturedLog();
  const rig = await startRig({ upstreams: [ok], logger });
  try {
    rig.sessions.failWith = [spawnError()];
    const page = await request(rig.port, { headers: { accept: 'application/json', 'x-request-id': 'visitor-7' } });
    const shown = (JSON.parse(page.body.toString()) as { error: { error_id: string } }).error.error_id;
    await eventually(() => lines.some((l) => l['error_id'] === shown), 2_000, 'the log line');
    const line = lines.find((l) => l['error_id'] === shown)!;
    assert.equal(line['code'], 'HF_SPAWN_EXITED');
    assert.equal(line['status'], 503);
    assert.equal(line['request_id'], 'visitor-7');
    assert.match(JSON.stringify(line['err']), /exited with code 1/);

    rig.sessions.processes = [{ pid: 1000, target: { kind: 'tcp', host: '127.0.0.1', port: await closedPort() } }];
    const upstream = await request(rig.port, { method: 'POST', body: 'x', path: '/orders?token=secret' });
    assert.equal(upstream.status, 502);
    const id = /Error ID: <code>([0-9a-f]{8})<\/code>/.exec(upstream.body.toString())![1];
    await eventually(() => lines.some((l) => l['error_id'] === id), 2_000, 'the upstream failure log line');
    const failure = lines.find((l) => l['error_id'] === id)!;
    assert.equal(failure['code'], 'HF_UPSTREAM');
    assert.equal(failure['path'], '/orders', 'the query string stays out of the log');
    assert.match(String(failure['msg']), /ECONNREFUSED/);
  } finally {
    await rig.close();
  }
});

test('an app that sends more than its answer: the visitor gets the answer, the log names the process and the request, the next visitor is served', async () => {
  const { lines, logger } = capturedLog();
  const overlong: http.RequestListener = (req, res) => {
    req.resume();
    // A length counted in characters: 5 for 'héllo', which is 6 bytes.
    if (req.url?.startsWith('/long')) req.socket.write(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nh\u00e9llo'));
    else res.end('ok');
  };
  const rig = await startRig({ upstreams: [overlong], logger });
  try {
    const answer = await request(rig.port, { path: '/long?token=secret' });
    assert.equal(answer.body.length, 5, 'the answer up to its Content-Length');
    await eventually(() => lines.some((l) => l['event'] === 'upstream_bytes_after_answer'), 2_000, 'the log line');
    const line = lines.find((l) => l['event'] === 'upstream_bytes_after_answer')!;
    assert.equal(line['level'], 40);
    assert.equal(line['app_pid'], 1001);
    assert.equal(line['method'], 'GET');
    assert.equal(line['path'], '/long', 'the query string stays out of the log');
    assert.match(String(line['msg']), /app process 1001 at .* sent bytes after the end of its answer to GET \/long/);
    assert.equal((await request(rig.port)).body.toString(), 'ok');
  } finally {
    await rig.close();
  }
});

test('a visitor that takes nothing of a big answer is cut off after the send timeout and its process freed; one that reads slowly but steadily gets it all', async () => {
  const { lines, logger } = capturedLog();
  const total = 48 << 20;
  let appStreams = 0;
  const big: http.RequestListener = (_req, res) => {
    appStreams++;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    const chunk = Buffer.alloc(64 << 10, 7);
    let sent = 0;
    const more = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  };
  const rig = await startRig({ upstreams: [big], logger, sendTimeoutMs: 400 });
  try {
    // Reads nothing at all.
    const stalled = await connect(rig.port);
    stalled.pause();
    stalled.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    let stalledClosed = false;
    stalled.on('close', () => (stalledClosed = true));
    stalled.on('error', () => undefined);
    await eventually(() => rig.sessions.closed.length === 1, 5_000, 'the session freed');
    // A paused socket does not see its end: it does once it reads again (what it gets is cut short).
    stalled.resume();
    await eventually(() => stalledClosed, 5_000, 'the stalled visitor cut off');
    assert.equal(rig.done[0]!.statusCode, 200, 'the answer had begun');
    const line = lines.find((l) => l['event'] === 'visitor_stalled');
    assert.ok(line, 'the log says why');
    assert.equal(line['level'], 40);
    assert.match(String(line['msg']), /took nothing of the answer to GET \/big for 400 ms: its connection was closed and app process 1001 freed/);

    // Stops for 100 ms after each MiB: the whole answer takes longer than the send timeout, but the
    // connection never stays full that long.
    const steady = await connect(rig.port);
    steady.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    let received = 0;
    let nextPause = 1 << 20;
    const started = performance.now();
    const ended = once(steady, 'close');
    steady.on('data', (piece: Buffer) => {
      received += piece.length;
      if (received >= nextPause) {
        nextPause += 1 << 20;
        steady.pause();
        setTimeout(() => steady.resume(), 100);
      }
    });
    const bound = setTimeout(() => steady.destroy(), 60_000);
    await ended;
    clearTimeout(bound);
    assert.ok(received > total, `the whole answer came: ${received} bytes`);
    assert.ok(performance.now() - started > 400, 'the answer took longer than the send timeout');
    assert.equal(rig.done[1]!.statusCode, 200);
    assert.equal(appStreams, 2);
  } finally {
    await rig.close();
  }
});
