// WSGI apps (issue 17) started for real: a passenger_wsgi.py dir with no flag, the environ the loader
// builds, streamed and written responses, errors, a virtualenv's python, Flask and Django.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Holdfast, get, runCli, stopClean } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';
import { wsgiSource } from '../../helpers/apps';
import { SYSTEM_PYTHON } from '../../helpers/wsgi-apps';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, options: http.RequestOptions, body?: string | string[]): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
    for (const piece of Array.isArray(body) ? body : body === undefined ? [] : [body]) req.write(piece);
    req.end();
  });
}

test('holdfast start serves a directory holding only passenger_wsgi.py with no flag', async () => {
  const hf = await Holdfast.start(fixtureApp('wsgi'));
  try {
    const reply = await get(hf.url('/'));
    assert.equal(reply.status, 200);
    assert.match(reply.body, /^wsgi pid \d+ python /);
  } finally {
    await stopClean(hf);
  }
});

test('the environ carries the request: method, decoded PATH_INFO, query, body, headers, scheme and the visitor address', async () => {
  const hf = await Holdfast.start(fixtureApp('wsgi'), ['--python', SYSTEM_PYTHON]);
  try {
    const reply = await request(
      hf.url('/env%20here?x=1&y=%20'),
      {
        method: 'POST',
        headers: {
          'Content-Type': 'text/plain',
          'X-Custom': 'a',
          'X-Forwarded-Proto': 'https',
          'X-Forwarded-For': '203.0.113.9',
          Cookie: 'a=1',
          X_Custom: 'spoofed', // an underscore header must not pass for X-Custom
        },
      },
      ['chunked ', 'body'],
    );
    assert.equal(reply.status, 200);
    const env = JSON.parse(reply.body) as Record<string, unknown>;
    assert.equal(env['REQUEST_METHOD'], 'POST');
    assert.equal(env['SCRIPT_NAME'], '');
    assert.equal(env['PATH_INFO'], '/env here');
    assert.equal(env['QUERY_STRING'], 'x=1&y=%20');
    assert.equal(env['body'], 'chunked body');
    assert.equal(env['CONTENT_LENGTH'], '12');
    assert.equal(env['CONTENT_TYPE'], 'text/plain');
    assert.equal(env['HTTP_X_CUSTOM'], 'a');
    assert.equal(env['HTTP_COOKIE'], 'a=1');
    assert.equal(env['wsgi.url_scheme'], 'https');
    // holdfast appended the address it saw; that one is the visitor, not what the visitor claimed.
    assert.equal(env['REMOTE_ADDR'], '127.0.0.1');
    assert.equal(env['SERVER_NAME'], '127.0.0.1');
    assert.equal(env['SERVER_PORT'], String(hf.port));
    assert.equal(env['SERVER_PROTOCOL'], 'HTTP/1.1');
    assert.deepEqual([env['wsgi.multithread'], env['wsgi.multiprocess'], env['wsgi.run_once']], [false, true, false]);
    assert.ok(!(env['http_keys'] as string[]).includes('HTTP_CONTENT_TYPE'));

    const plain = JSON.parse((await request(hf.url('/env'), { method: 'GET' })).body) as Record<string, unknown>;
    assert.equal(plain['wsgi.url_scheme'], 'http');
    assert.equal(plain['body'], '');
    // A body past the loader's in-memory size (1 MB) spills to a temp file and arrives whole.
    const big = 'x'.repeat(3 * 1024 * 1024);
    assert.equal((await request(hf.url('/size'), { method: 'POST', headers: { 'Content-Length': big.length } }, big)).body, `${big.length} ${big.length}`);
    assert.equal((await request(hf.url('/size'), { method: 'POST' }, [big.slice(0, 1000), big.slice(1000)])).body, `${big.length} ${big.length}`);
  } finally {
    await stopClean(hf);
  }
});

test('iterable responses are streamed and closed, write() works, and the process output reaches the log', async () => {
  const hf = await Holdfast.start(fixtureApp('wsgi'), ['--python', SYSTEM_PYTHON]);
  try {
    const stream = await request(hf.url('/stream'), { method: 'GET' });
    assert.equal(stream.status, 200);
    assert.equal(stream.body, 'one,two,three');
    await hf.waitForLog('close() in the log', (l) => l.msg === 'wsgi fixture: close() called' && typeof l.app_pid === 'number');
    const written = await request(hf.url('/write'), { method: 'GET' });
    assert.equal(written.body, 'written,returned');
    const head = await request(hf.url('/'), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const printed = await request(hf.url('/print'), { method: 'GET' });
    assert.equal(printed.status, 204);
    await hf.waitForLog('stdout in the log', (l) => l.msg === 'wsgi fixture: printed to stdout' && l.stream === 'stdout');
  } finally {
    await stopClean(hf);
  }
});

test('an exception in the app gives the visitor a plain 500 and the log its traceback; the process serves on', async () => {
  const hf = await Holdfast.start(fixtureApp('wsgi'), ['--python', SYSTEM_PYTHON]);
  try {
    const pid = [...hf.appPids][0];
    const failed = await request(hf.url('/error'), { method: 'GET' });
    assert.equal(failed.status, 500);
    assert.doesNotMatch(failed.body, /secret|Traceback|RuntimeError/);
    await hf.waitForLog('the traceback', (l) => /RuntimeError: the fixture fails on purpose/.test(l.msg));
    assert.ok(hf.lines.some((l) => /^Traceback/.test(l.msg) && l.app_pid === pid));
    // Failing after the headers were sent: the response is cut short, never passed off as complete.
    await request(hf.url('/error-mid-stream'), { method: 'GET' }).then(
      (answer) => assert.notEqual(answer.body, 'partial', 'a cut-short response must not look complete'),
      () => undefined,
    );
    await hf.waitForLog('the mid-stream traceback', (l) => /RuntimeError: fails after the headers/.test(l.msg));
    const after = await get(hf.url('/'));
    assert.equal(after.status, 200);
    assert.ok(hf.livePids().includes(pid!), 'the process that raised serves on');
    assert.ok(!hf.lines.some((l) => l.app_pid === pid && /died|stopped/.test(l.msg)));
  } finally {
    await stopClean(hf);
  }
});

test('a WSGI app cannot split its answer with a header or status it echoes: start_response raises, the visitor gets a plain 500, the log says why', async () => {
  const hf = await Holdfast.start(fixtureApp('wsgi'), ['--python', SYSTEM_PYTHON]);
  try {
    for (const injected of ['a%0d%0aSet-Cookie:%20evil=1', 'a%0aSet-Cookie:%20evil=1', 'a%00b', '%0d%0aSet-Cookie:%20evil=1']) {
      const answer = await request(hf.url(`/header?${injected}`), { method: 'GET' });
      assert.equal(answer.status, 500, injected);
      assert.equal(answer.headers['set-cookie'], undefined, injected);
      assert.equal(answer.headers['x-echo'], undefined, injected);
    }
    await hf.waitForLog('the header named', (l) => /ValueError: invalid value for header X-Echo: 'a\\r\\nSet-Cookie: evil=1'/.test(l.msg));
    await hf.waitForLog('the status named', (l) => /ValueError: invalid status '200 OK\\r\\nSet-Cookie: evil=1'/.test(l.msg));
    const fine = await request(hf.url('/header?tab%09and%20space'), { method: 'GET' });
    assert.equal(fine.status, 200);
    assert.equal(fine.headers['x-echo'], 'tab\tand space');
  } finally {
    await stopClean(hf);
  }
});

test('an absolute-form request reaches a WSGI app as its path and query, a query right after the authority included', async () => {
  const hf = await Holdfast.start(fixtureApp('wsgi'), ['--python', SYSTEM_PYTHON]);
  try {
    for (const [target, path, query] of [
      ['http://example.com/env/x?q=1', '/env/x', 'q=1'],
      ['http://example.com/env', '/env', ''],
    ] as const) {
      const answer = await request(hf.url('/'), { method: 'GET', path: target, headers: { host: 'example.com' } });
      const info = JSON.parse(answer.body) as Record<string, string>;
      assert.deepEqual([info['PATH_INFO'], info['QUERY_STRING']], [path, query], target);
    }
    const bare = await request(hf.url('/'), { method: 'GET', path: 'http://example.com?show=query', headers: { host: 'example.com' } });
    assert.equal(bare.body, '/ show=query');
  } finally {
    await stopClean(hf);
  }
});

test('a virtualenv made with --system-site-packages runs a Flask app through its bin/python', async () => {
  const venv = mkdtempSync(join(tmpdir(), 'hf-venv-'));
  execFileSync(SYSTEM_PYTHON, ['-m', 'venv', '--without-pip', '--system-site-packages', venv]);
  const hf = await Holdfast.start(fixtureApp('wsgi-flask'), ['--python', join(venv, 'bin', 'python')]);
  try {
    assert.equal((await get(hf.url('/'))).body, 'flask says hello');
    const echoed = await request(hf.url('/echo'), { method: 'POST', headers: { 'Content-Type': 'text/plain', 'X-Forwarded-Proto': 'https' } }, 'hi flask');
    assert.deepEqual(JSON.parse(echoed.body), { got: 'hi flask', scheme: 'https', remote: '127.0.0.1' });
    const streamed = await request(hf.url('/stream'), { method: 'GET' });
    assert.equal(streamed.body, 'abc');
    assert.equal(streamed.headers['transfer-encoding'], 'chunked');
    assert.match((await get(hf.url('/users/ada?x=1'))).body, /^user ada at http:\/\/127\.0\.0\.1:\d+\/users\/ada\?x=1$/);
    assert.equal((await get(hf.url('/nope'))).status, 404);
    assert.equal((await get(hf.url('/python'))).body, join(venv, 'bin', 'python'));
  } finally {
    await stopClean(hf);
    rmSync(venv, { recursive: true, force: true });
  }
});

test('a minimal Django project is served, and sees https and the visitor through the forwarded headers', async () => {
  const hf = await Holdfast.start(fixtureApp('wsgi-django'), ['--python', SYSTEM_PYTHON]);
  try {
    assert.match((await get(hf.url('/'))).body, /^version v1 pid \d+$/);
    const who = await request(hf.url('/whoami'), { method: 'GET', headers: { 'X-Forwarded-Proto': 'https', Host: 'shop.example:8443' } });
    assert.deepEqual(JSON.parse(who.body), { secure: true, remote: '127.0.0.1', host: 'shop.example:8443' });
    assert.equal((await get(hf.url('/missing'))).status, 404);
  } finally {
    await stopClean(hf);
  }
});

/** `holdfast start` of an app that cannot start at all: exit 1, and the error on stderr. */
async function firstStartFails(dir: string, args: string[]): Promise<string> {
  const registry = mkdtempSync(join(tmpdir(), 'hf-reg-'));
  try {
    const r = await runCli(['start', dir, '--port', '0', '--address', '127.0.0.1', ...args], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^holdfast: the app could not start: /);
    return r.stderr;
  } finally {
    rmSync(registry, { recursive: true, force: true });
  }
}

test('a passenger_wsgi.py that cannot be imported is a spawn error with the traceback, and visitors see no detail', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-wsgi-boot-'));
  try {
    // At first start: exit 1 with the traceback.
    writeFileSync(join(dir, 'passenger_wsgi.py'), 'import flask_not_installed_anywhere\n');
    const stderr = await firstStartFails(dir, ['--python', SYSTEM_PYTHON]);
    assert.match(stderr, /ModuleNotFoundError: No module named 'flask_not_installed_anywhere'/);
    assert.match(stderr, /Traceback/);
    // In a deploy: the spawn error holds the traceback, the visitor sees none of it.
    writeFileSync(join(dir, 'passenger_wsgi.py'), wsgiSource('good', 'v1'));
    const hf = await Holdfast.start(dir, ['--python', SYSTEM_PYTHON]);
    try {
      writeFileSync(join(dir, 'passenger_wsgi.py'), 'import flask_not_installed_anywhere\n');
      assert.notEqual((await hf.cli(['restart', '--no-rolling'])).code, 0);
      const line = await hf.waitForLog('the spawn error', (l) => l.code === 'HF_SPAWN_EXITED');
      const error = line.spawn_error as { exit_code: number; output_tail: string[]; command: string };
      assert.equal(error.exit_code, 1);
      assert.ok(error.output_tail.includes("ModuleNotFoundError: No module named 'flask_not_installed_anywhere'"), error.output_tail.join('\n'));
      assert.ok(error.output_tail.some((l) => l.startsWith('Traceback')));
      assert.match(error.command, /python3 wsgi_loader\.py .*passenger_wsgi\.py$/);
      const page = await get(hf.url('/'));
      assert.equal(page.status, 503);
      assert.doesNotMatch(page.body, /flask_not_installed_anywhere|Traceback/);
    } finally {
      await stopClean(hf);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a python that does not exist is a spawn error naming it', async () => {
  const stderr = await firstStartFails(fixtureApp('wsgi'), ['--python', '/nonexistent/bin/python3']);
  assert.match(stderr, /HF_SPAWN_OS/);
  assert.match(stderr, /ENOENT for \/nonexistent\/bin\/python3/);
});

test('a startup_file that does not fit app_type "wsgi" is refused with a hint, before anything starts', async () => {
  const r = await runCli(['start', fixtureApp('wsgi'), '--app-type', 'wsgi', '--startup-file', '../hello/app.js'], process.env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /startup_file "\.\.\/hello\/app\.js" is a Node file, but the app type is "wsgi" \(it would be run by python\): set app_type "node", or a WSGI \(Python\) startup_file/);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
});
