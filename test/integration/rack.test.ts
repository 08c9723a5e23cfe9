// Rack apps (issue 16): a config.ru dir served with no flag through holdfast's Rack loader, the Rack
// features the loader must get right, smart spawning from a preloader, and direct spawning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Holdfast, get, pidAlive, runCli, stopClean, waitFor } from '../helpers/holdfast';
import { fixtureApp } from '../helpers/paths';
import { AppDir } from '../helpers/apps';
import { connect, rawAnswer } from '../helpers/proxy-fakes';

interface RackGroup {
  app_type?: string;
  spawn_method?: string;
  preloaders?: Array<{ pid: number; generation: number; processes: number }>;
  processes: Array<{ pid: number; generation: number; state: string }>;
}

async function group(hf: Holdfast): Promise<RackGroup> {
  return (await hf.status()).groups[0] as unknown as RackGroup;
}

function request(url: string, options: http.RequestOptions, body?: string | Buffer): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('timed out')));
    req.end(body);
  });
}

test('a directory with only a config.ru is served as a Rack app with no flag, smart-spawned, one request at a time per process', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--min-instances', '2', '--max-pool-size', '2']);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
    const r = await get(hf.url('/'));
    assert.equal(r.status, 200);
    assert.match(r.body, /^features pid \d+$/);
    const g = await group(hf);
    assert.equal(g.app_type, 'rack');
    assert.equal(g.spawn_method, 'smart');
    assert.equal(g.preloaders?.length, 1);
    const preloader = g.preloaders![0]!;
    assert.ok(pidAlive(preloader.pid));
    assert.equal(preloader.processes, 2);
    assert.ok(hf.lines.some((l) => l.event === 'preloader_ready' && l.preloader_pid === preloader.pid));
    assert.ok(hf.lines.some((l) => l.app_type === 'rack' && l.app_type_reason === 'config.ru found'));
    // Metrics name the type, the spawn method and the preloader with its processes.
    const instance = JSON.parse(readFileSync(join(hf.registryDir, hf.name, 'instance.json'), 'utf8')) as { socket_path: string };
    const metrics = await request('http://holdfast/metrics', {
      socketPath: instance.socket_path,
      headers: { authorization: `Bearer ${readFileSync(join(hf.registryDir, hf.name, 'read_token'), 'utf8').trim()}` },
    });
    assert.match(metrics.body, /^holdfast_app_info\{app="[^"]+",app_type="rack",spawn_method="smart"\} 1$/m);
    assert.match(metrics.body, new RegExp(`^holdfast_preloader_processes\\{app="[^"]+",pid="${preloader.pid}",generation="1"\\} 2$`, 'm'));
    // The text status names the type and the preloader.
    const text = await hf.cli(['status']);
    assert.match(text.stdout, /App type: rack \(smart spawning, preloader pid \d+\)/);
    // Concurrency 1: of 4 slow requests at once on 2 processes, 2 are served and 2 wait in the queue.
    const slow = Promise.all([1, 2, 3, 4].map(() => get(hf.url('/slow'))));
    const busy = await waitFor('both processes busy', async () => {
      const s = (await hf.status()).groups[0]!;
      return s.requests_in_queue === 2 ? s : false;
    }, 5000, 20);
    assert.deepEqual(busy.processes.map((p) => p.sessions), [1, 1]);
    assert.ok((await slow).every((b) => b.status === 200));
    await stopClean(hf);
    assert.ok(!pidAlive(preloader.pid), 'the preloader is gone with holdfast');
  } finally {
    if (hf.child.exitCode === null) await stopClean(hf);
  }
});

test('the Rack loader streams each-able bodies and closes them, keeps rack.input rewindable, decodes chunked uploads and gives the Rack env', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--environment', 'staging']);
  const dir = mkdtempSync(join(tmpdir(), 'hf-rack-'));
  try {
    const marker = join(dir, 'closed');
    const s = await get(hf.url(`/stream?${marker}`));
    assert.equal(s.body, 'one-two-three');
    assert.equal(s.headers['transfer-encoding'], 'chunked');
    await waitFor('body.close', () => existsSync(marker));
    assert.equal(readFileSync(marker, 'utf8'), 'closed');

    const big = Buffer.alloc(3 * 1024 * 1024, 'x'); // past the loader's in-memory limit: a temp file
    const echo = await request(hf.url('/echo'), { method: 'POST', headers: { 'content-length': big.length } }, big);
    assert.equal(echo.body, `${big.length} true xxxxxxxxxxxxxxxxxxxx`);
    const chunked = await request(hf.url('/echo'), { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, 'hello chunked');
    assert.equal(chunked.body, '13 true hello chunked');

    const env = JSON.parse((await get(hf.url('/env?a=1'), { host: 'example.test:8080', 'x-forwarded-proto': 'https' })).body) as Record<string, unknown>;
    assert.equal(env['REQUEST_METHOD'], 'GET');
    assert.equal(env['PATH_INFO'], '/env');
    assert.equal(env['QUERY_STRING'], 'a=1');
    assert.equal(env['SERVER_NAME'], 'example.test');
    assert.equal(env['SERVER_PORT'], '8080');
    assert.equal(env['REMOTE_ADDR'], '127.0.0.1');
    assert.equal(env['RACK_ENV'], 'staging');
    assert.equal(env['rack.multithread'], false);
    assert.equal(env['rack.hijack?'], true);

    const multi = await get(hf.url('/multi'));
    assert.deepEqual(multi.headers['set-cookie'], ['a=1', 'b=2']);
  } finally {
    await stopClean(hf);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rack.hijack works (full and partial), and an exception in the app is a 500 while the process serves on', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'));
  try {
    const full = await get(hf.url('/hijack'));
    assert.equal(full.status, 200);
    assert.equal(full.body, 'hijacked');
    const partial = await get(hf.url('/partial-hijack'));
    assert.equal(partial.status, 200);
    assert.equal(partial.body, 'partial');
    const pids = (await group(hf)).processes.map((p) => p.pid);
    const failed = await get(hf.url('/raise'));
    assert.equal(failed.status, 500);
    await hf.waitForLog('the exception in the log', (l) => /ArgumentError: the app failed on purpose/.test(l.msg));
    assert.ok(pids.every(pidAlive), 'no process died of the exception');
    assert.equal((await get(hf.url('/'))).status, 200);
  } finally {
    await stopClean(hf);
  }
});

/** GET `path` on a connection of its own, kept alive; what the server sends until it closes it, or 3 s pass (`closed`: it did). */
async function readUntilClosed(url: string, path: string): Promise<{ data: string; closed: boolean }> {
  const socket = await connect(Number(new URL(url).port));
  let closed = false;
  socket.once('end', () => (closed = true));
  socket.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
  const data = Buffer.from(await rawAnswer(socket, 3_000), 'latin1').toString('utf8');
  return { data, closed };
}

for (const handoff of [true, false]) {
  test(`a Rack app whose Content-Length is wrong: the loader ends the connection after the body and logs it, nobody waits for ever (${handoff ? 'hand-off' : 'proxy path'})`, async () => {
    const hf = await Holdfast.start(fixtureApp('rack-features'), handoff ? [] : ['--no-connection-handoff']);
    try {
      // Too short: the reader would wait for the 5 bytes that never come.
      const short = await readUntilClosed(hf.url(), '/short-length');
      assert.ok(short.closed, `the connection was left open: ${JSON.stringify(short.data)}`);
      assert.match(short.data, /^HTTP\/1\.1 200 [^]*\r\n\r\n12345$/);
      await hf.waitForLog('the loader says why', (l) => /GET \/short-length: Content-Length 10 but 5 bytes were sent; closing the connection/.test(String(l.msg)));
      // Too long: the visitor never sees a byte past the length on a connection that stays open (the
      // loader closes a handed-off one; through the proxy it gets the bytes the length says).
      const long = await readUntilClosed(hf.url(), '/long-length');
      const body = long.data.slice(long.data.indexOf('\r\n\r\n') + 4);
      assert.ok(long.closed || Buffer.byteLength(body) === 5, JSON.stringify(long.data));
      if (!handoff) {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
          assert.equal(Buffer.byteLength((await get(hf.url('/long-length'), {}, agent)).body), 5);
          assert.match((await get(hf.url('/'), {}, agent)).body, /^features pid \d+$/);
        } finally {
          agent.destroy();
        }
      }
      await hf.waitForLog('the loader says why', (l) => /GET \/long-length: Content-Length 5 but 6 bytes were sent/.test(String(l.msg)));
    } finally {
      await stopClean(hf);
    }
  });
}

for (const handoff of [true, false]) {
  test(`a Rack app cannot split its answer with a header it echoes: a header with a CR or LF, or a bad name, is left out and logged; a bad status is a 500 (${handoff ? 'hand-off' : 'proxy path'})`, async () => {
    const hf = await Holdfast.start(fixtureApp('rack-features'), handoff ? [] : ['--no-connection-handoff']);
    try {
      for (const injected of ['a%0d%0aSet-Cookie:%20evil=1', 'a%0dSet-Cookie:%20evil=1', 'a%00b']) {
        const socket = await connect(hf.port);
        socket.write(`GET /header?${injected} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        const raw = await rawAnswer(socket);
        assert.match(raw, /^HTTP\/1\.1 200 [^]*\r\n\r\nechoed$/, injected);
        assert.doesNotMatch(raw, /x-echo|evil/i, injected);
      }
      await hf.waitForLog('the loader says which header', (l) => /GET \/header\?a%0d%0aSet-Cookie:%20evil=1: header "x-echo" left out: a control character in its value/.test(String(l.msg)));
      const fine = await get(hf.url('/header?tab%09and%20space'));
      assert.equal(fine.headers['x-echo'], 'tab\tand space');

      const named = await connect(hf.port);
      named.write('GET /bad-header-name HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const namedRaw = await rawAnswer(named);
      assert.match(namedRaw, /^HTTP\/1\.1 200 [^]*x-fine: yes\r\n[^]*\r\n\r\nnamed$/);
      assert.doesNotMatch(namedRaw, /evil/);
      await hf.waitForLog('the bad name', (l) => /header "x-a\\r\\nset-cookie: evil=1" left out: not a valid header name/.test(String(l.msg)));

      const status = await get(hf.url('/bad-status'));
      assert.equal(status.status, 500);
      await hf.waitForLog('the bad status', (l) => /GET \/bad-status: invalid status 0 \(Rack wants an Integer 100-999\); answered 500/.test(String(l.msg)));
      const stringStatus = await get(hf.url('/string-status'));
      assert.deepEqual([stringStatus.status, stringStatus.body], [201, 'made']);
      assert.match((await get(hf.url('/'))).body, /^features pid \d+$/);
    } finally {
      await stopClean(hf);
    }
  });
}

for (const handoff of [true, false]) {
  test(`a Rack app never sees a header whose name has an underscore: X_Forwarded_For cannot stand in for the X-Forwarded-For holdfast sets (${handoff ? 'hand-off' : 'proxy path'})`, async () => {
    const hf = await Holdfast.start(fixtureApp('rack-features'), handoff ? [] : ['--no-connection-handoff']);
    try {
      const answer = await get(hf.url('/forwarded'), {
        X_Forwarded_For: '6.6.6.6',
        X_Forwarded_Proto: 'https',
        X_Forwarded_Host: 'evil.example',
        X_Request_Id: 'spoofed-id',
        Remote_Addr: '7.7.7.7',
      });
      const env = JSON.parse(answer.body) as Record<string, string>;
      assert.equal(env['REMOTE_ADDR'], '127.0.0.1');
      assert.equal(env['HTTP_X_FORWARDED_FOR'], '127.0.0.1');
      assert.equal(env['HTTP_X_FORWARDED_PROTO'], 'http');
      assert.equal(env['HTTP_X_FORWARDED_HOST'], `127.0.0.1:${hf.port}`);
      assert.match(env['HTTP_X_REQUEST_ID']!, /^[0-9a-f-]{36}$/);
      assert.equal(answer.headers['x-request-id'], env['HTTP_X_REQUEST_ID'], 'the id the app sees is the one the answer carries');
    } finally {
      await stopClean(hf);
    }
  });
}

for (const handoff of [true, false]) {
  test(`a Rack app routes an absolute-form request on its path and query, keeps the first of two Hosts, and a tab in the request line is a 400 (${handoff ? 'hand-off' : 'proxy path'})`, async () => {
    const hf = await Holdfast.start(fixtureApp('rack-features'), handoff ? [] : ['--no-connection-handoff']);
    try {
      const envOf = async (head: string): Promise<Record<string, string>> => {
        const socket = await connect(hf.port);
        socket.write(`${head}Connection: close\r\n\r\n`);
        const raw = await rawAnswer(socket);
        assert.match(raw, /^HTTP\/1\.1 200 /, head);
        return JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, string>;
      };
      const absolute = await envOf('GET http://example.com/env?q=1 HTTP/1.1\r\nHost: example.com\r\n');
      assert.deepEqual([absolute['PATH_INFO'], absolute['QUERY_STRING']], ['/env', 'q=1']);
      const twoHosts = await envOf('GET /env HTTP/1.1\r\nHost: first.example\r\nHost: second.example\r\n');
      assert.equal(twoHosts['SERVER_NAME'], 'first.example');
      const tab = await connect(hf.port);
      tab.write('GET /env\tHTTP/1.1\r\nHost: x\r\n\r\n');
      assert.match(await rawAnswer(tab), /^HTTP\/1\.1 400 /);
    } finally {
      await stopClean(hf);
    }
  });
}

test('spawn_method "direct" starts every Rack process from scratch, with no preloader', async () => {
  const hf = await Holdfast.start(fixtureApp('rack-features'), ['--min-instances', '2', '--spawn-method', 'direct']);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
    const g = await group(hf);
    assert.equal(g.app_type, 'rack');
    assert.equal(g.spawn_method, 'direct');
    assert.equal(g.preloaders, undefined);
    assert.ok(!hf.lines.some((l) => l.event === 'preloader_ready'));
  } finally {
    await stopClean(hf);
  }
});

test('a restart starts a preloader for the new generation and stops the old one once its processes are gone', async () => {
  const app = new AppDir('good', 'v1', 'rack');
  const hf = await Holdfast.start(app.dir, ['--min-instances', '2', '--rolling-restarts']);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
    const old = (await group(hf)).preloaders![0]!;
    app.deploy('good', 'v2');
    const r = await hf.cli(['restart']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match((await get(hf.url('/'))).body, /^version v2 pid \d+$/);
    await waitFor('the old preloader to stop', () => !pidAlive(old.pid), 15_000);
    const g = await group(hf);
    assert.equal(g.preloaders?.length, 1);
    assert.equal(g.preloaders![0]!.generation, 2);
    assert.ok(hf.lines.some((l) => l.event === 'preloader_stopped' && l.preloader_pid === old.pid));
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('a Rack app that cannot boot is a spawn error holding the exception class, message and backtrace', async () => {
  // At first start: holdfast says so and exits 1.
  const broken = new AppDir('syntax-error', 'v1', 'rack');
  const registry = mkdtempSync(join(tmpdir(), 'hf-reg-'));
  try {
    const r = await runCli(['start', broken.dir, '--port', '0', '--address', '127.0.0.1'], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exited with code 1 before it was ready/);
    assert.match(r.stderr, /Error while loading the app \(SyntaxError\)/);
    assert.match(r.stderr, /config\.ru:2/, 'the backtrace or the parser names the line');
  } finally {
    rmSync(registry, { recursive: true, force: true });
    broken.remove();
  }
  // In a deploy: the spawn error holds it, and nothing internal reaches a visitor in production.
  const app = new AppDir('good', 'v1', 'rack');
  const hf = await Holdfast.start(app.dir);
  try {
    app.deploy('syntax-error', 'v2');
    assert.notEqual((await hf.cli(['restart', '--no-rolling'])).code, 0);
    const line = await hf.waitForLog('the spawn error', (l) => l.event === 'spawn_error', 30_000);
    assert.match(line.msg, /exited with code 1 before it was ready/);
    assert.match(line.msg, /Error while loading the app \(SyntaxError\)/);
    const s = await hf.status();
    const err = (s.groups[0] as unknown as { last_spawn_error: { output_tail: string[] } }).last_spawn_error;
    assert.ok(err.output_tail.some((l) => /SyntaxError/.test(l)));
    assert.ok(err.output_tail.some((l) => /config\.ru:2/.test(l)), 'the backtrace or the parser names the line');
    const page = await get(hf.url('/'));
    assert.equal(page.status, 503);
    assert.doesNotMatch(page.body, /SyntaxError/, 'nothing internal reaches a visitor in production');
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('in development, the error page of a Rack app that cannot boot shows the exception class, message and backtrace', async () => {
  const app = new AppDir('good', 'v1', 'rack');
  const hf = await Holdfast.start(app.dir, ['--environment', 'development']);
  try {
    app.deploy('syntax-error', 'v2');
    assert.notEqual((await hf.cli(['restart', '--no-rolling'])).code, 0);
    const page = await get(hf.url('/'));
    assert.equal(page.status, 503);
    assert.match(page.body, /Error while loading the app \(SyntaxError\)/);
    assert.match(page.body, /config\.ru:2/);
    assert.match(page.body, /in `load_app/, 'the backtrace');
    const json = await get(hf.url('/'), { accept: 'application/json' });
    assert.match(json.body, /"output":\[[^\]]*SyntaxError/);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('a startup_file that does not fit the app type is refused up front with a one-line hint', async () => {
  const app = new AppDir('good', 'v1', 'rack');
  const registry = mkdtempSync(join(tmpdir(), 'hf-reg-'));
  try {
    writeFileSync(join(app.dir, 'holdfast.json'), JSON.stringify({ app_type: 'node', startup_file: 'config.ru' }));
    const r = await runCli(['start', app.dir, '--port', '0'], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /startup_file "config\.ru" is a Rack \(Ruby\) file, but the app type is "node" \(it would be run by node\): set app_type "rack"/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    rmSync(registry, { recursive: true, force: true });
    app.remove();
  }
});
