// The fast lane (plain requests without a body, read by holdfast's own parser) answers exactly as
// Node's server does, and hands a connection over to Node's server whenever a request needs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { connect, eventually, rawAnswer, request } from '../../helpers/proxy-fakes';
import { startRig, type ProxyRig } from '../../helpers/proxy-setup';

/** How much of /huge the app has handed to its connection so far. */
let hugeSent = 0;

function app(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://x');
    // What the app got, a generated request id aside.
    const rawHeaders = req.rawHeaders.map((v, i, all) => (i % 2 === 1 && all[i - 1]!.toLowerCase() === 'x-request-id' && v !== 'given-1' ? '(generated)' : v));
    const seen = JSON.stringify({ method: req.method, url: req.url, rawHeaders, body: Buffer.concat(chunks).toString() });
    switch (url.pathname) {
      case '/stream':
        // No length: chunked to the visitor, in pieces.
        res.writeHead(200, { 'content-type': 'text/plain', 'x-app': 'a' });
        res.write('one,');
        setTimeout(() => res.end('two'), 20);
        return;
      case '/empty':
        res.writeHead(204, { 'x-app': 'a' });
        res.end();
        return;
      case '/not-modified':
        res.writeHead(304, { etag: '"e"' });
        res.end();
        return;
      case '/close':
        res.writeHead(200, { 'content-type': 'text/plain', connection: 'close', 'keep-alive': 'timeout=1', 'x-hop': 'h' });
        res.end('closing');
        return;
      case '/slow':
        setTimeout(() => res.end(`slow ${url.search}`), Number(url.searchParams.get('ms') ?? 300));
        return;
      case '/big':
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1 << 20 });
        res.end(Buffer.alloc(1 << 20, 7));
        return;
      case '/huge': {
        // 32 MiB in 64 KiB writes, each after the last was taken: far more than the sockets between
        // here and a visitor who does not read can hold.
        const total = 32 << 20;
        const chunk = Buffer.alloc(64 << 10, 9);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
        let sent = 0;
        hugeSent = 0;
        const more = (): void => {
          while (sent < total) {
            sent += chunk.length;
            hugeSent = sent;
            if (sent >= total) {
              res.end(chunk);
              return;
            }
            if (!res.write(chunk)) {
              res.once('drain', more);
              return;
            }
          }
        };
        more();
        return;
      }
      default:
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
        res.end(seen);
    }
  });
}

interface Answer {
  status: string;
  headers: string[];
  body: string;
}

/** Splits raw answers off a byte stream (Content-Length, chunked, or none for HEAD/204/304). */
function parseAnswers(text: string, heads: boolean[]): Answer[] {
  const out: Answer[] = [];
  let rest = text;
  for (const head of heads) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [status, ...lines] = rest.slice(0, end).split('\r\n');
    rest = rest.slice(end + 4);
    const headers = lines.map((l) => l.toLowerCase().startsWith('date:') ? 'date: (now)' : l).map((l) => (/^x-request-id:/i.test(l) ? 'x-request-id: (id)' : l));
    const code = Number(status!.split(' ')[1]);
    let body = '';
    const length = lines.find((l) => /^content-length:/i.test(l));
    if (head || code === 204 || code === 304) body = '';
    else if (length) {
      const n = Number(length.split(':')[1]);
      body = rest.slice(0, n);
      rest = rest.slice(n);
    } else if (lines.some((l) => /^transfer-encoding: chunked$/i.test(l))) {
      for (;;) {
        const lineEnd = rest.indexOf('\r\n');
        const size = parseInt(rest.slice(0, lineEnd), 16);
        rest = rest.slice(lineEnd + 2);
        if (size === 0) {
          rest = rest.slice(2);
          break;
        }
        body += rest.slice(0, size);
        rest = rest.slice(size + 2);
      }
    } else {
      // Neither: the body ends with the connection (an answer to HTTP/1.0).
      body = rest;
      rest = '';
    }
    out.push({ status: status!, headers: headers.sort(), body });
  }
  return out;
}

async function rawOnce(port: number, text: string, answers: boolean[]): Promise<Answer[]> {
  const socket = await connect(port);
  socket.write(text);
  return parseAnswers(await rawAnswer(socket, 1_500), answers);
}

async function withRigs(run: (fast: ProxyRig, node: ProxyRig) => Promise<void>, options: { keepAliveTimeoutMs?: number } = {}): Promise<void> {
  const fast = await startRig({ upstreams: [app], ...options });
  const node = await startRig({ upstreams: [app], fastLane: false, ...options });
  try {
    await run(fast, node);
  } finally {
    await fast.close();
    await node.close();
  }
}

test('the fast lane answers every kind of answer exactly as Node\'s server does: status, headers, framing, body', async () => {
  await withRigs(async (fast, node) => {
    const cases: Array<{ text: string; head: boolean[] }> = [
      { text: 'GET /json?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-Id: given-1\r\nConnection: close\r\n\r\n', head: [false] },
      { text: 'HEAD /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', head: [true] },
      { text: 'GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', head: [false] },
      { text: 'GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', head: [false] },
      { text: 'GET /not-modified HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', head: [false] },
      { text: 'GET /close HTTP/1.1\r\nHost: x\r\n\r\n', head: [false] },
      { text: 'DELETE /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', head: [false] },
      // Two pipelined, the second closing.
      { text: 'GET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', head: [false, false] },
    ];
    for (const { text, head } of cases) {
      const viaFast = await rawOnce(fast.port, text, head);
      const viaNode = await rawOnce(node.port, text, head);
      assert.equal(viaFast.length, head.length, `${JSON.stringify(text)}: every answer came`);
      assert.deepEqual(viaFast, viaNode, JSON.stringify(text));
    }
    assert.deepEqual(fast.done.map((d) => d.statusCode), node.done.map((d) => d.statusCode));
  });
});

test('a connection moves to Node\'s server at the first request the lane does not take, and every request on it is answered in order', async () => {
  await withRigs(async (fast) => {
    const text =
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /b HTTP/1.1\r\nHost: x\r\n\r\n' +
      'POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
      'GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const answers = await rawOnce(fast.port, text, [false, false, false, false]);
    assert.deepEqual(answers.map((a) => (JSON.parse(a.body) as { url: string }).url), ['/a', '/b', '/c', '/d']);
    assert.equal((JSON.parse(answers[2]!.body) as { body: string }).body, 'hello');
    assert.equal(fast.upstreams[0]!.requests.length, 4);
  });
});

test('bytes after a request that closes its connection: the requests up to it are answered in order, the connection closes, the rest never reaches the app', async () => {
  await withRigs(async (fast, node) => {
    for (const closing of ['GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'GET /d HTTP/1.0\r\n\r\n']) {
      // A body on the way, so that the connection is Node's server's by then, in both rigs.
      const text =
        'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
        'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
        closing +
        'GET /after HTTP/1.1\r\nHost: x\r\n\r\n';
      for (const rig of [fast, node]) {
        const before = rig.upstreams[0]!.requests.length;
        const socket = await connect(rig.port);
        socket.write(text);
        const started = performance.now();
        const raw = await rawAnswer(socket, 4_000);
        assert.ok(performance.now() - started < 3_000, 'the connection was closed after the last answer');
        const answers = parseAnswers(raw, [false, false, false, false, false]);
        assert.deepEqual(answers.map((a) => a.status.split(' ')[1]), ['200', '200', '200', '200'], `${JSON.stringify(closing)}: ${raw.slice(0, 300)}`);
        assert.deepEqual(answers.map((a) => (JSON.parse(a.body) as { url: string }).url), ['/a', '/b', '/c', '/d']);
        assert.deepEqual(rig.upstreams[0]!.requests.slice(before).map((r) => r.url), ['/a', '/b', '/c', '/d']);
      }
    }
  });
});

test('a head split across reads, HTTP/1.0, an Upgrade and odd headers are served by Node\'s server as before', async () => {
  await withRigs(async (fast) => {
    const socket = await connect(fast.port);
    const answered = rawAnswer(socket);
    socket.write('GET /split HTTP/1.1\r\nHo');
    await new Promise((r) => setTimeout(r, 50));
    socket.write('st: x\r\nConnection: close\r\n\r\n');
    const [split] = parseAnswers(await answered, [false]);
    assert.match(split!.status, /^HTTP\/1\.1 200/);
    assert.equal((JSON.parse(split!.body) as { url: string }).url, '/split');

    const [old] = await rawOnce(fast.port, 'GET /old HTTP/1.0\r\nHost: x\r\n\r\n', [false]);
    assert.match(old!.status, /^HTTP\/1\.1 200/);
    const [bad] = await rawOnce(fast.port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n', [false]);
    assert.match(bad!.status, /^HTTP\/1\.1 400/);
    const [noHost] = await rawOnce(fast.port, 'GET / HTTP/1.1\r\n\r\n', [false]);
    assert.match(noHost!.status, /^HTTP\/1\.1 400/);
    const res = await request(fast.port, { path: '/after' });
    assert.equal(res.status, 200, 'the server keeps serving');
  });
});

test('an idle kept-alive connection is closed after the keep-alive timeout, never while its request is served', async () => {
  await withRigs(
    async (fast) => {
      const socket = await connect(fast.port);
      const answered = rawAnswer(socket);
      const started = performance.now();
      socket.write('GET /slow?ms=700 HTTP/1.1\r\nHost: x\r\n\r\n');
      const [answer] = parseAnswers(await answered, [false]);
      assert.equal(answer?.body, 'slow ?ms=700', 'the slow answer came whole');
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 700 + 300 - 50 && elapsed < 700 + 300 + 1_500, `closed ${Math.round(elapsed)} ms after the request, ~300 ms after the answer`);
    },
    { keepAliveTimeoutMs: 300 },
  );
});

test('a visitor that goes away mid-request is counted as gone (499) and its session freed', async () => {
  await withRigs(async (fast) => {
    const socket = await connect(fast.port);
    socket.write('GET /slow?ms=500 HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => fast.upstreams[0]!.requests.length === 1, 2_000, 'the request at the app');
    socket.end();
    await eventually(() => fast.done.length === 1, 3_000, 'the exchange to end');
    assert.equal(fast.done[0]!.statusCode, 499);
    assert.equal(fast.sessions.open(), 0);
    socket.destroy();
  });
});

test('a big answer goes through the lane with back-pressure, intact', async () => {
  await withRigs(async (fast) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await request(fast.port, { path: '/big', agent });
        assert.equal(res.status, 200);
        assert.equal(res.body.length, 1 << 20);
        assert.ok(res.body.every((b) => b === 7));
      }
    } finally {
      agent.destroy();
    }
  });
});

test('a visitor who stops reading holds the answer back (the app is paused), then gets every byte and the next answer on the same connection', async () => {
  await withRigs(async (fast) => {
    const socket = await connect(fast.port);
    socket.pause();
    socket.write('GET /huge HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => fast.upstreams[0]!.requests.length === 1, 2_000, 'the request at the app');
    // The app's writes must stall: what the kernel holds between the app, holdfast and the visitor
    // is a few MiB, the answer 32 MiB.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(fast.upstreams[0]!.requests.length, 1, 'the pipelined request waits for the answer before it');
    assert.ok(hugeSent < 32 << 20, `the app was held back (it had written ${hugeSent} bytes)`);
    let bytes = 0;
    let nines = 0;
    let text = '';
    let headRead = false;
    socket.on('data', (chunk: Buffer) => {
      if (!headRead) {
        text += chunk.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        if (end < 0) return;
        headRead = true;
        chunk = Buffer.from(text.slice(end + 4), 'latin1');
        text = text.slice(0, end + 4);
      }
      const take = Math.min(chunk.length, (32 << 20) - bytes);
      for (let i = 0; i < take; i++) if (chunk[i] === 9) nines++;
      bytes += take;
      if (take < chunk.length) text += chunk.subarray(take).toString('latin1');
    });
    socket.resume();
    await eventually(() => bytes === 32 << 20 && text.includes('"url":"/json"'), 10_000, 'the whole answer and the next one');
    assert.equal(nines, 32 << 20);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text.slice(text.indexOf('\r\n\r\n') + 4), /^HTTP\/1\.1 200 OK\r\n/);
    socket.destroy();
  });
});

test('a flood of pipelined requests (more than the lane holds unread) is answered in order, each once', async () => {
  await withRigs(async (fast) => {
    const socket = await connect(fast.port);
    const count = 300;
    const padding = 'p'.repeat(400);
    let text = '';
    for (let i = 0; i < count; i++) text += `GET /n${i} HTTP/1.1\r\nHost: x\r\nX-Pad: ${padding}\r\n\r\n`;
    assert.ok(text.length > 64 * 1024);
    const answered = rawAnswer(socket, 10_000);
    socket.write(`${text}GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const answers = parseAnswers(await answered, new Array<boolean>(count + 1).fill(false));
    assert.equal(answers.length, count + 1);
    answers.forEach((answer, i) => {
      assert.equal(answer.status, 'HTTP/1.1 200 OK');
      assert.equal((JSON.parse(answer.body) as { url: string }).url, i === count ? '/last' : `/n${i}`);
    });
  });
});

test('close(): idle lane connections close at once, a request in flight finishes with Connection: close', async () => {
  const rig = await startRig({ upstreams: [app] });
  const idle = await connect(rig.port);
  idle.write('GET /json HTTP/1.1\r\nHost: x\r\n\r\n');
  await once(idle, 'data');
  const idleClosed = once(idle, 'close');
  const busy = await connect(rig.port);
  const answered = rawAnswer(busy);
  busy.write('GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n');
  await eventually(() => rig.upstreams[0]!.requests.length === 2, 2_000, 'the slow request at the app');
  const closing = rig.close();
  await idleClosed;
  const [answer] = parseAnswers(await answered, [false]);
  await closing;
  assert.equal(answer?.body, 'slow ?ms=300');
  assert.ok(answer?.headers.some((h) => h.toLowerCase() === 'connection: close'), answer?.headers.join('|'));
});
