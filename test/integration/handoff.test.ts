// The connection hand-off (issue 6): Node app processes take whole visitor connections, and the
// guarantees of the proxy still hold - restarts fail no kept-alive connection, balance, headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { AppDir } from '../helpers/apps';
import { underLoad } from '../helpers/deploy';
import { Holdfast, pidAlive, stopClean, waitFor } from '../helpers/holdfast';
import { runLoad } from '../helpers/load';
import { fixtureApp } from '../helpers/paths';

/** An app that answers what it saw of the request and of its connection, as JSON. */
function echoApp(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'hf-echo-'));
  writeFileSync(
    join(dir, 'app.js'),
    `require('node:http').createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid, remotePort: req.socket.remotePort ?? null, rawHeaders: req.rawHeaders, headers: req.headers }));
}).listen(3000);
`,
  );
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  localPort: number;
  reused: boolean;
}

/** One request over the given agent, with the client side of the connection it went over. */
function request(url: string, agent: http.Agent, headers: http.OutgoingHttpHeaders | string[] = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers, localPort: req.socket!.localPort!, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('timed out')));
  });
}

test('a Node app gets the visitor connection itself, with X-Forwarded-* and a request id, and connections spread over the processes', async () => {
  const app = echoApp();
  // probation_time 0: a process in probation takes no connection (a test below has the default).
  const hf = await Holdfast.start(app.dir, ['--min-instances', '2', '--probation-time', '0']);
  const agents = [new http.Agent({ keepAlive: true, maxSockets: 1 }), new http.Agent({ keepAlive: true, maxSockets: 1 })];
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    const first = await request(hf.url('/'), agents[0]!);
    const again = await request(hf.url('/'), agents[0]!, { 'x-request-id': 'deploy-42', 'x-forwarded-for': '203.0.113.9' });
    // Repeated X-Forwarded-For lines join into one chain; a request id that is not sane is replaced;
    // the visitor's own X-Forwarded-Proto is kept, as on the proxy path.
    const odd = await request(hf.url('/'), agents[0]!, ['Host', `127.0.0.1:${hf.port}`, 'X-Forwarded-For', '198.51.100.1', 'x-forwarded-for', '198.51.100.2', 'X-Request-Id', 'not sane', 'X-Forwarded-Proto', 'https']);
    const seen = JSON.parse(first.body) as { pid: number; remotePort: number; headers: Record<string, string>; rawHeaders: string[] };
    const seenAgain = JSON.parse(again.body) as typeof seen;
    const seenOdd = JSON.parse(odd.body) as typeof seen;
    assert.equal(seenOdd.headers['x-forwarded-for'], '198.51.100.1, 198.51.100.2, 127.0.0.1');
    assert.equal(seenOdd.headers['x-forwarded-proto'], 'https');
    assert.match(seenOdd.headers['x-request-id']!, /^[0-9a-f-]{36}$/);
    assert.equal(odd.headers['x-request-id'], seenOdd.headers['x-request-id']);
    // rawHeaders tell the same story as headers (frameworks read either).
    for (const s of [seen, seenAgain, seenOdd]) {
      const fromRaw: Record<string, string[]> = {};
      for (let i = 0; i < s.rawHeaders.length; i += 2) (fromRaw[s.rawHeaders[i]!.toLowerCase()] ??= []).push(s.rawHeaders[i + 1]!);
      for (const name of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']) {
        assert.deepEqual(fromRaw[name], [s.headers[name]], `${name} in rawHeaders: ${JSON.stringify(s.rawHeaders)}`);
      }
    }
    // The app's socket is the visitor's TCP connection: its remote port is the client's own port.
    assert.equal(seen.remotePort, first.localPort);
    assert.ok(again.reused);
    assert.equal(seenAgain.pid, seen.pid, 'a kept-alive connection stays with its process');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${hf.port}`);
    assert.match(seen.headers['x-request-id']!, /^[0-9a-f-]{36}$/);
    assert.equal(first.headers['x-request-id'], seen.headers['x-request-id'], 'the visitor gets the request id too');
    assert.equal(seenAgain.headers['x-request-id'], 'deploy-42', 'a sane incoming request id is kept');
    assert.equal(seenAgain.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    const other = JSON.parse((await request(hf.url('/'), agents[1]!)).body) as typeof seen;
    assert.notEqual(other.pid, seen.pid, 'the second connection goes to the process with fewer');
    const processes = (await hf.status()).groups[0]!.processes;
    assert.deepEqual(processes.map((p) => p.connections), [1, 1]);
    assert.equal(processes.reduce((n, p) => n + p.processed, 0), 4);
  } finally {
    for (const a of agents) a.destroy();
    await stopClean(hf);
    app.remove();
  }
});

/** A raw connection that has sent nothing yet (a browser's spare connection). */
function openQuiet(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** One request written on a raw connection, and the raw answer up to the end of its body. */
function rawGet(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no answer on the quiet connection: ${JSON.stringify(text)}`)), 10_000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const head = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text)?.[1];
      if (head >= 0 && length !== undefined && text.length >= head + 4 + Number(length)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
    socket.once('close', () => reject(new Error(`the quiet connection was closed: ${JSON.stringify(text)}`)));
    socket.write('GET / HTTP/1.1\r\nHost: test\r\n\r\n');
  });
}

test('a rolling restart under load fails no request, and idle kept-alive connections are served by the new version on the same connection', async () => {
  const app = new AppDir('good', 'v1');
  // probation_time 1 s: a process takes connections once through it; the restart then fits well
  // within the 5 s an idle kept-alive connection is kept.
  const hf = await Holdfast.start(app.dir, ['--min-instances', '2', '--probation-time', '1', '--drain-timeout', '10']);
  const idle = Array.from({ length: 4 }, () => new http.Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 60_000 }));
  const quiet: net.Socket[] = [];
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    await new Promise((r) => setTimeout(r, 1200));
    const before = await Promise.all(idle.map((a) => request(hf.url('/'), a)));
    assert.ok(before.every((r) => /version v1/.test(r.body)));
    for (let i = 0; i < 2; i++) quiet.push(await openQuiet(hf.port));
    const status = (await hf.status()).groups[0]!.processes;
    assert.equal(status.reduce((n, p) => n + p.connections, 0), 6, 'all six are handed off');
    const oldPids = status.map((p) => p.pid);
    const { value: restart, load } = await underLoad(hf, 16, async () => {
      app.deploy('good', 'v2');
      return hf.cli(['restart', '--rolling']);
    });
    assert.equal(restart.code, 0, restart.stdout + restart.stderr);
    assert.equal(load.failed, 0, load.errors.join('\n'));
    assert.ok(load.requests > 100);
    assert.ok(oldPids.every((pid) => !pidAlive(pid)), 'the old processes are gone');
    // The idle connections were given back by the old processes and handed to new ones, unbroken.
    const after = await Promise.all(idle.map((a) => request(hf.url('/'), a)));
    for (const [i, r] of after.entries()) {
      assert.equal(r.status, 200);
      assert.match(r.body, /version v2/);
      assert.ok(r.reused, `connection ${i} was kept, not reopened`);
      assert.equal(r.localPort, before[i]!.localPort);
    }
    for (const socket of quiet) assert.match(await rawGet(socket), /^HTTP\/1\.1 200 [^]*version v2/);
  } finally {
    for (const a of idle) a.destroy();
    for (const socket of quiet) socket.destroy();
    await stopClean(hf);
    app.remove();
  }
});

test('max_requests while resisting a deployment error: the process reaches the limit and goes on serving on the same connection', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--max-requests', '10', '--rolling-restarts', '--resist-deployment-errors', '--probation-time', '0']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const pid = [...hf.appPids][0]!;
    app.deploy('syntax-error', 'v2');
    const restart = await hf.cli(['restart']);
    assert.notEqual(restart.code, 0);
    assert.ok((await hf.status()).groups[0]!.resisting_deployment_error);
    // The hook holds its connections at the limit until holdfast answers; resisting, it says go on.
    for (let i = 0; i < 25; i++) {
      const r = await request(hf.url('/'), agent);
      assert.equal(r.status, 200);
      assert.match(r.body, new RegExp(`version v1 pid ${pid}`));
    }
    const p = (await hf.status()).groups[0]!.processes[0]!;
    assert.equal(p.pid, pid);
    assert.equal(p.state, 'enabled');
    assert.ok(p.processed >= 25);
  } finally {
    agent.destroy();
    await stopClean(hf);
    app.remove();
  }
});

test('when the pool grows under load, kept-alive connections spread to the new process', async () => {
  const hf = await Holdfast.start(fixtureApp('cpu'), ['--max-pool-size', '2', '--pool-idle-time', '0']);
  try {
    const ac = new AbortController();
    const load = runLoad({ url: hf.url('/?ms=5'), connections: 8, durationMs: 20_000, signal: ac.signal });
    const spread = await waitFor(
      'both processes to hold connections',
      async () => {
        const processes = (await hf.status()).groups[0]!.processes;
        return processes.length === 2 && processes.every((p) => p.connections > 0) && processes;
      },
      15_000,
      200,
    );
    ac.abort();
    const result = await load;
    assert.equal(result.failed, 0, result.errors.join('\n'));
    assert.equal(spread.reduce((n, p) => n + p.connections, 0), 8);
  } finally {
    await stopClean(hf);
  }
});

test('the readiness path is answered on handed-off connections without reaching the app', async () => {
  const app = echoApp();
  const hf = await Holdfast.start(app.dir, ['--readiness-path', '/_ready', '--probation-time', '0']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await request(hf.url('/'), agent); // the connection is now the app's
    const ready = await request(hf.url('/_ready'), agent);
    assert.ok(ready.reused);
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ready\n');
  } finally {
    agent.destroy();
    await stopClean(hf);
    app.remove();
  }
});

test('a WebSocket upgrade works over a handed-off connection', async () => {
  const hf = await Holdfast.start(fixtureApp('websocket-echo'), ['--probation-time', '0']);
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${hf.port}/`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const echoed = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    ws.send('over the hand-off');
    assert.equal(await echoed, 'over the hand-off');
    assert.equal((await hf.status()).groups[0]!.processes[0]!.connections, 1);
    ws.close();
    await new Promise((r) => ws.once('close', r));
    await waitFor('the connection to be over', async () => (await hf.status()).groups[0]!.processes[0]!.connections === 0, 5000, 100);
  } finally {
    await stopClean(hf);
  }
});

test('connections that came while no process could take them (probation) are closed after an answer once one can, and come back handed off', async () => {
  const app = echoApp();
  const hf = await Holdfast.start(app.dir, ['--probation-time', '2']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const early = await request(hf.url('/'), agent);
    assert.equal((JSON.parse(early.body) as { remotePort: number | null }).remotePort, null, 'proxied during probation');
    assert.equal(early.headers.connection, 'keep-alive');
    await new Promise((r) => setTimeout(r, 2200));
    const last = await request(hf.url('/'), agent);
    assert.ok(last.reused);
    assert.equal(last.headers.connection, 'close', 'the proxied connection is let go');
    const handed = await request(hf.url('/'), agent);
    assert.equal(handed.reused, false);
    assert.equal((JSON.parse(handed.body) as { remotePort: number }).remotePort, handed.localPort, 'the new one is handed off');
  } finally {
    agent.destroy();
    await stopClean(hf);
    app.remove();
  }
});

test('with connection_handoff false every request is proxied: the app sees holdfast, not the visitor', async () => {
  const app = echoApp();
  const hf = await Holdfast.start(app.dir, ['--no-connection-handoff']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const r = await request(hf.url('/'), agent);
    const seen = JSON.parse(r.body) as { remotePort: number | null; headers: Record<string, string> };
    assert.equal(seen.remotePort, null, 'the app is reached over its Unix socket');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal((await hf.status()).groups[0]!.processes[0]!.connections, 0);
  } finally {
    agent.destroy();
    await stopClean(hf);
    app.remove();
  }
});
