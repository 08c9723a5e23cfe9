// The hand-off path on Rack apps (issue 16's speed, docs/performance.md): the Rack loader takes whole
// visitor connections and serves them one request at a time, with the proxy's duties - forwarded
// headers, the request id, visitor-side limits - and gives back what it should not hold: kept-alive
// connections on a restart, the connections waiting behind a long request, static files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppDir } from '../helpers/apps';
import { parsePrometheusText, valueOf } from '../helpers/prometheus';
import { Holdfast, pidAlive, stopClean, waitFor } from '../helpers/holdfast';
import { fixtureApp } from '../helpers/paths';

interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  localPort: number;
  reused: boolean;
}

function request(url: string, agent: http.Agent, options: { method?: string; headers?: http.OutgoingHttpHeaders | string[]; body?: string | Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers, localPort: req.socket!.localPort!, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('timed out')));
    req.end(options.body);
  });
}

interface Forwarded {
  REMOTE_ADDR: string;
  HTTP_X_FORWARDED_FOR: string;
  HTTP_X_FORWARDED_PROTO: string;
  HTTP_X_FORWARDED_HOST: string;
  HTTP_X_REQUEST_ID: string;
  pid: number;
  body: string;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything the server sends on socket until it closes it, or until `until` matches. */
function readUntil(socket: net.Socket, until: RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no ${until} in ${JSON.stringify(text)}`)), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(text);
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (until.test(text)) done();
    };
    socket.on('data', onData);
    socket.once('close', done);
  });
}

async function connections(hf: Holdfast): Promise<number[]> {
  return (await hf.status()).groups[0]!.processes.map((p) => p.connections);
}

test('a Rack app takes the visitor connection itself: X-Forwarded-*, REMOTE_ADDR and a request id as on the proxy path, one connection per process', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--min-instances', '2', '--probation-time', '0']);
  const agents = [new http.Agent({ keepAlive: true, maxSockets: 1 }), new http.Agent({ keepAlive: true, maxSockets: 1 })];
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
    const first = await request(hf.url('/forwarded'), agents[0]!);
    const again = await request(hf.url('/forwarded'), agents[0]!, {
      method: 'POST',
      headers: { 'x-request-id': 'deploy-42', 'x-forwarded-for': '203.0.113.9', 'content-type': 'text/plain' },
      body: 'posted body',
    });
    const odd = await request(hf.url('/forwarded'), agents[0]!, {
      headers: ['Host', `127.0.0.1:${hf.port}`, 'X-Forwarded-For', '198.51.100.1', 'x-forwarded-for', '198.51.100.2', 'X-Request-Id', 'not sane', 'X-Forwarded-Proto', 'https'],
    });
    const seen = JSON.parse(first.body) as Forwarded;
    const seenAgain = JSON.parse(again.body) as Forwarded;
    const seenOdd = JSON.parse(odd.body) as Forwarded;
    assert.equal(seen.REMOTE_ADDR, '127.0.0.1');
    assert.equal(seen.HTTP_X_FORWARDED_FOR, '127.0.0.1');
    assert.equal(seen.HTTP_X_FORWARDED_PROTO, 'http');
    assert.equal(seen.HTTP_X_FORWARDED_HOST, `127.0.0.1:${hf.port}`);
    assert.match(seen.HTTP_X_REQUEST_ID, /^[0-9a-f-]{36}$/);
    assert.equal(first.headers['x-request-id'], seen.HTTP_X_REQUEST_ID, 'the visitor gets the request id too');
    assert.ok(again.reused);
    assert.equal(seenAgain.pid, seen.pid, 'a kept-alive connection stays with its process');
    assert.equal(seenAgain.HTTP_X_REQUEST_ID, 'deploy-42', 'a sane incoming request id is kept');
    assert.equal(seenAgain.HTTP_X_FORWARDED_FOR, '203.0.113.9, 127.0.0.1');
    assert.equal(seenAgain.body, 'posted body');
    assert.equal(seenOdd.HTTP_X_FORWARDED_FOR, '198.51.100.1, 198.51.100.2, 127.0.0.1');
    assert.equal(seenOdd.HTTP_X_FORWARDED_PROTO, 'https');
    assert.match(seenOdd.HTTP_X_REQUEST_ID, /^[0-9a-f-]{36}$/);
    const other = JSON.parse((await request(hf.url('/forwarded'), agents[1]!)).body) as Forwarded;
    assert.notEqual(other.pid, seen.pid, 'the second connection goes to the process with fewer');
    assert.deepEqual(await connections(hf), [1, 1], 'both connections are handed off');
    const processes = (await hf.status()).groups[0]!.processes;
    assert.equal(processes.reduce((n, p) => n + p.processed, 0), 4);
  } finally {
    for (const a of agents) a.destroy();
    await stopClean(hf);
  }
});

test('a request that runs long gives back the connections waiting behind it: another process serves them, spawned on demand', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--min-instances', '1', '--max-pool-size', '2', '--probation-time', '0']);
  const slowAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const [pid] = [...hf.appPids];
    // Both connections are handed to the one process.
    await request(hf.url('/'), slowAgent);
    await request(hf.url('/'), agent);
    assert.deepEqual(await connections(hf), [2]);
    const started = Date.now();
    const slow = request(hf.url('/sleep?3000'), slowAgent);
    await new Promise((r) => setTimeout(r, 300));
    const waiting = await request(hf.url('/'), agent);
    const waited = Date.now() - started;
    assert.equal(waiting.status, 200);
    assert.notEqual(waiting.body, `features pid ${pid}`, 'served by another process, not behind the long request');
    assert.ok(waited < 2500, `answered after ${waited} ms, before the long request ended`);
    const long = await slow;
    assert.equal(long.body, `slept pid ${pid}`);
    assert.equal((await hf.status()).groups[0]!.processes.length, 2, 'the pool grew on demand');
  } finally {
    slowAgent.destroy();
    agent.destroy();
    await stopClean(hf);
  }
});

test('a rolling restart of a Rack app serves idle kept-alive connections from the new version on the same connection', async () => {
  const app = new AppDir('good', 'v1', 'rack');
  const hf = await Holdfast.start(app.dir, ['--min-instances', '2', '--probation-time', '1', '--drain-timeout', '10']);
  const idle = Array.from({ length: 4 }, () => new http.Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 60_000 }));
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
    await new Promise((r) => setTimeout(r, 1200));
    const before = await Promise.all(idle.map((a) => request(hf.url('/'), a)));
    assert.ok(before.every((r) => /version v1/.test(r.body)), before.map((r) => r.body).join());
    const status = (await hf.status()).groups[0]!.processes;
    assert.equal(status.reduce((n, p) => n + p.connections, 0), 4, 'all four are handed off');
    app.deploy('good', 'v2');
    const restart = await hf.cli(['restart', '--rolling']);
    assert.equal(restart.code, 0, restart.stdout + restart.stderr);
    assert.ok(status.every((p) => !pidAlive(p.pid)), 'the old processes are gone');
    const after = await Promise.all(idle.map((a) => request(hf.url('/'), a)));
    for (const [i, r] of after.entries()) {
      assert.equal(r.status, 200);
      assert.match(r.body, /version v2/);
      assert.ok(r.reused, `connection ${i} was kept, not reopened`);
      assert.equal(r.localPort, before[i]!.localPort);
    }
  } finally {
    for (const a of idle) a.destroy();
    await stopClean(hf);
    app.remove();
  }
});

test('on a handed-off connection a static file is answered by holdfast, and the app keeps its requests', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--probation-time', '0']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const app = await request(hf.url('/'), agent);
    assert.match(app.body, /^features pid \d+$/);
    assert.deepEqual(await connections(hf), [1]);
    const file = await request(hf.url('/static.txt'), agent);
    assert.equal(file.status, 200);
    assert.equal(file.body, 'a static file\n');
    assert.match(String(file.headers['content-type']), /^text\/plain/);
    // A path out of public/ is refused, never read (raw: URL would resolve the dots itself).
    const raw = await connect(hf.port);
    try {
      raw.write('GET /%2e%2e/config.ru HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const escape = await readUntil(raw, /(?!)/);
      assert.match(escape, /^HTTP\/1\.1 4\d\d /);
      assert.doesNotMatch(escape, /CountingBody/);
    } finally {
      raw.destroy();
    }
    const later = await request(hf.url('/'), agent);
    assert.match(later.body, /^features pid \d+$/);
  } finally {
    agent.destroy();
    await stopClean(hf);
  }
});

test('slow and oversized visitors cannot hold a Rack process: a trickled head does not block others, bodies over the limit get 413, 100-continue works, bad requests get 400', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--max-pool-size', '1', '--probation-time', '0', '--max-request-body-size', '1']);
  const sockets: net.Socket[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    // A visitor that sends half a head, on the process's connection, then stops.
    const trickle = await connect(hf.port);
    sockets.push(trickle);
    trickle.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    await waitFor('the trickling connection handed off', async () => (await connections(hf))[0] === 1, 5000, 50);
    for (let i = 0; i < 5; i++) assert.equal((await request(hf.url('/'), agent)).status, 200);

    // Refused from its Content-Length, before the body is read.
    const big = await connect(hf.port);
    sockets.push(big);
    big.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`);
    assert.match(await readUntil(big, /\r\n\r\n[^]+/), /^HTTP\/1\.1 413 /);
    const chunkedBig = await request(hf.url('/echo'), new http.Agent(), { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: Buffer.alloc(2 * 1024 * 1024, 'y') }).catch(
      (e: Error) => ({ status: 0, body: e.message }),
    );
    assert.ok(chunkedBig.status === 413 || chunkedBig.status === 0, `a chunked body past the limit: ${chunkedBig.status}`);
    const small = await request(hf.url('/echo'), agent, { method: 'POST', body: 'within' });
    assert.equal(small.body, '6 true within');

    const expect = await connect(hf.port);
    sockets.push(expect);
    expect.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
    assert.match(await readUntil(expect, /100 Continue\r\n\r\n/), /^HTTP\/1\.1 100 Continue/);
    expect.write('hello');
    assert.match(await readUntil(expect, /true hello/), /200 OK[^]*5 true hello/);

    const bad = await connect(hf.port);
    sockets.push(bad);
    bad.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n');
    assert.match(await readUntil(bad, /\r\n\r\n[^]+/), /^HTTP\/1\.1 400 /);

    // A head past 16 KB, as Node's parser (the proxy, the Node hook) refuses it.
    const huge = await connect(hf.port);
    sockets.push(huge);
    huge.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20 * 1024)}\r\n\r\n`);
    assert.match(await readUntil(huge, /\r\n\r\n[^]+/), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);

    // A coding under chunked would reach the app undone and unannounced: 501, as on the proxy path;
    // chunked not last leaves the body's length unknown: 400.
    for (const [codings, answer] of [['gzip, chunked', /^HTTP\/1\.1 501 Not Implemented\r\n/], ['gzip', /^HTTP\/1\.1 400 Bad Request\r\n/]] as const) {
      const coded = await connect(hf.port);
      sockets.push(coded);
      coded.write(`POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${codings}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
      assert.match(await readUntil(coded, /\r\n\r\n[^]+/), answer, codings);
    }
    const chunked = await connect(hf.port);
    sockets.push(chunked);
    chunked.write('POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.match(await readUntil(chunked, /true hello/), /200 OK[^]*5 true hello/);

    trickle.write('done\r\n\r\n');
    assert.match(await readUntil(trickle, /features pid/), /^HTTP\/1\.1 200 OK/);
  } finally {
    for (const s of sockets) s.destroy();
    agent.destroy();
    await stopClean(hf);
  }
});

test('max_requests on handed-off Rack connections: the process is recycled and the kept-alive connection goes on to the new one', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--max-requests', '5', '--max-pool-size', '1', '--probation-time', '0']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const pids = new Set<string>();
    let reused = 0;
    for (let i = 0; i < 12; i++) {
      const r = await request(hf.url('/'), agent);
      assert.equal(r.status, 200);
      pids.add(r.body);
      if (r.reused) reused++;
    }
    assert.ok(pids.size >= 2, `recycled: ${[...pids].join(', ')}`);
    assert.ok(reused >= 6, `the connection was kept across recycling (${reused} of 11 reused)`);
  } finally {
    agent.destroy();
    await stopClean(hf);
  }
});

test('spawn_method "direct" Rack processes take connections too, answer the readiness path, and every process is gone after stop', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--spawn-method', 'direct', '--min-instances', '2', '--probation-time', '0', '--readiness-path', '/_ready']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let pids: number[] = [];
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
    for (let i = 0; i < 3; i++) assert.match((await request(hf.url('/'), agent)).body, /^features pid \d+$/);
    assert.equal((await connections(hf)).reduce((a, b) => a + b, 0), 1);
    const ready = await request(hf.url('/_ready'), agent);
    assert.ok(ready.reused, 'asked on the handed-off connection');
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ready\n');
    pids = [...hf.appPids];
  } finally {
    agent.destroy();
    await stopClean(hf);
  }
  assert.ok(pids.every((pid) => !pidAlive(pid)));
});

async function scrape(hf: Holdfast) {
  const instance = JSON.parse(readFileSync(join(hf.registryDir, hf.name, 'instance.json'), 'utf8')) as { socket_path: string };
  const token = readFileSync(join(hf.registryDir, hf.name, 'read_token'), 'utf8').trim();
  const text = await new Promise<string>((resolve, reject) => {
    const req = http.get({ socketPath: instance.socket_path, path: '/metrics', headers: { host: 'holdfast', authorization: `Bearer ${token}` }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
  return parsePrometheusText(text);
}

test('requests served on handed-off Rack connections count in the metrics, by status class, with their durations', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--probation-time', '0']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await request(hf.url('/'), agent);
    const before = await scrape(hf);
    const ok = valueOf(before, 'holdfast_requests_total', { status_class: '2xx' }) ?? 0;
    const errors = valueOf(before, 'holdfast_requests_total', { status_class: '5xx' }) ?? 0;
    const count = valueOf(before, 'holdfast_request_duration_seconds_count') ?? 0;
    for (let i = 0; i < 20; i++) assert.equal((await request(hf.url('/'), agent)).status, 200);
    assert.equal((await request(hf.url('/raise'), agent)).status, 500);
    assert.deepEqual(await connections(hf), [1], 'on the handed-off connection');
    const after = await scrape(hf);
    assert.equal(valueOf(after, 'holdfast_requests_total', { status_class: '2xx' }), ok + 20);
    assert.equal(valueOf(after, 'holdfast_requests_total', { status_class: '5xx' }), errors + 1);
    assert.equal(valueOf(after, 'holdfast_request_duration_seconds_count')! - count, 21);
  } finally {
    agent.destroy();
    await stopClean(hf);
  }
});
