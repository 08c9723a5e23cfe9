// holdfast serves real, unmodified apps end to end: the CLI, config, spawner, proxy and error pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Holdfast, get, pidAlive, runCli, waitFor, stopClean } from '../helpers/holdfast';
import { CLI, REPO_ROOT, fixtureApp } from '../helpers/paths';
import { AppDir } from '../helpers/apps';

test('serves the bundled example app', async () => {
  const hf = await Holdfast.start(join(REPO_ROOT, 'examples/hello'));
  try {
    const r = await get(hf.url('/'));
    assert.equal(r.status, 200);
    assert.match(r.body, /Hello from holdfast/);
    assert.ok(r.headers['x-request-id'], 'a request id comes back');
  } finally {
    await stopClean(hf);
  }
});

test('serves an unmodified Express app that calls app.listen(4567) with two processes that both take requests', async () => {
  const hf = await Holdfast.start(fixtureApp('express'), ['--min-instances', '2']);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    const replies = await Promise.all(Array.from({ length: 8 }, () => get(hf.url('/slow?ms=100'))));
    assert.ok(replies.every((r) => r.status === 200));
    const pids = new Set(replies.map((r) => /pid (\d+)/.exec(r.body)![1]));
    assert.equal(pids.size, 2, `both processes answered: ${[...pids].join(', ')}`);
  } finally {
    await stopClean(hf);
  }
});

test('serves a generic app started with app_start_command on $PORT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-static-'));
  writeFileSync(join(dir, 'index.html'), '<h1>served by python</h1>\n');
  const hf = await Holdfast.start(dir, ['--app-start-command', 'python3 -m http.server $PORT --bind 127.0.0.1']);
  try {
    const r = await get(hf.url('/index.html'));
    assert.equal(r.status, 200);
    assert.match(r.body, /served by python/);
  } finally {
    const { code, leftover } = await hf.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0);
    assert.deepEqual(leftover, []);
  }
});

/** A good first version, then a deploy with a syntax error through a plain restart: visitors meet the error page. */
async function brokenByDeploy(args: string[] = []): Promise<{ app: AppDir; hf: Holdfast }> {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, args);
  app.deploy('syntax-error', 'v2');
  assert.notEqual((await hf.cli(['restart', '--no-rolling'])).code, 0);
  return { app, hf };
}

test('an app with a syntax error gets a plain 503 in production with nothing internal in it, and the log holds the error with its id', async () => {
  const { app, hf } = await brokenByDeploy();
  try {
    const html = await get(hf.url('/'), { accept: 'text/html' });
    assert.equal(html.status, 503);
    const id = /\b([0-9a-f]{8})\b/.exec(html.body)?.[1];
    assert.ok(id, 'the page shows an error id');
    for (const leak of [app.dir, 'SyntaxError', 'node ', 'at ', '.js']) assert.ok(!html.body.includes(leak), `production page leaks "${leak}"`);
    const json = await get(hf.url('/'), { accept: 'application/json' });
    assert.equal(json.status, 503);
    const body = JSON.parse(json.body) as { error: Record<string, unknown> };
    assert.match(String(body.error.error_id), /^[0-9a-f]{8}$/);
    assert.ok(!json.body.includes('SyntaxError') && !json.body.includes(app.dir));
    const logged = await hf.waitForLog('the spawn error in the log', (l) => l.error_id === id && l.event === 'spawn_error');
    assert.match(logged.msg, /SyntaxError/);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('in development the error page shows the SyntaxError, the exit code, the command and the output', async () => {
  const { app, hf } = await brokenByDeploy(['--environment', 'development']);
  try {
    const r = await get(hf.url('/'), { accept: 'text/html' });
    assert.equal(r.status, 503);
    assert.match(r.body, /SyntaxError/);
    assert.match(r.body, /exit(ed)?( with)? code|exit code/i);
    assert.match(r.body, /app\.js/);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('a first start where the app cannot start exits 1 within start_timeout + 5 s with the error and its output on stderr, and says nothing of serving', async () => {
  for (const [fixture, args, evidence] of [
    ['syntax-error', [], /SyntaxError/],
    ['crash-on-boot', [], /exited|code/],
    ['slow-start', ['--start-timeout', '1'], /within 1 s|did not/],
  ] as Array<[string, string[], RegExp]>) {
    const registry = mkdtempSync(join(tmpdir(), 'hf-reg-'));
    const startedAt = Date.now();
    const r = await runCli(['start', fixtureApp(fixture), '--port', '0', '--address', '127.0.0.1', ...args], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry }, 30_000);
    try {
      assert.equal(r.code, 1, `${fixture}: exit 1`);
      assert.ok(Date.now() - startedAt < (args.length ? 1000 : 90_000) + 5000 + 5000, `${fixture}: exits within start_timeout + 5 s`);
      assert.match(r.stderr, /^holdfast: the app could not start: /);
      assert.match(r.stderr, /\(HF_SPAWN_[A-Z]+\)/);
      assert.match(r.stderr, evidence);
      assert.doesNotMatch(r.stdout + r.stderr, /"event":"serving"/, 'no serving line');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace of holdfast');
    } finally {
      rmSync(registry, { recursive: true, force: true });
    }
  }
});

test('kill -9 of holdfast leaves no app process behind, Node or generic', async () => {
  const node = await Holdfast.start(fixtureApp('hello'), ['--min-instances', '2']);
  const generic = await Holdfast.start(fixtureApp('generic'), ['--app-start-command', 'sleep 1000 & exec python3 server.py']);
  await waitFor('two node processes', () => node.appPids.size >= 2);
  const pids = [...node.appPids, ...generic.appPids];
  assert.equal(pids.length, 3);
  assert.ok(pids.every(pidAlive));
  node.child.kill('SIGKILL');
  generic.child.kill('SIGKILL');
  await Promise.all([node.exited, generic.exited]);
  await waitFor('every app process to go', () => pids.every((p) => !pidAlive(p)), 10_000);
  // The generic app's own child (sleep) went with it: nothing of its process group survives.
  const { leftover: a } = await node.stop();
  const { leftover: b } = await generic.stop();
  assert.deepEqual([...a, ...b], []);
});

test('SIGTERM stops holdfast cleanly: in-flight requests finish, exit code 0, no app process left', async () => {
  const hf = await Holdfast.start(fixtureApp('express'));
  const inflight = get(hf.url('/slow?ms=700'));
  await new Promise((r) => setTimeout(r, 200));
  const stopping = hf.stop();
  const r = await inflight;
  assert.equal(r.status, 200);
  const { code, leftover } = await stopping;
  assert.equal(code, 0);
  assert.deepEqual(leftover, []);
});

test('a port in use is one line naming the address, exit 1, and nothing started', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as net.AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'hf-port-'));
  const marker = join(dir, 'ran');
  writeFileSync(join(dir, 'app.js'), `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x'); require('http').createServer((q, s) => s.end('x')).listen(3000);\n`);
  const registry = mkdtempSync(join(tmpdir(), 'hf-reg-'));
  try {
    const r = await runCli(['start', dir, '--port', String(port), '--address', '127.0.0.1', '--name', 'portclash'], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry });
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^holdfast: .*127\\.0\\.0\\.1:${port}.*in use`));
    assert.ok(!r.stderr.includes('    at '));
    assert.throws(() => readFileSync(marker), 'the app never ran');
  } finally {
    blocker.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(registry, { recursive: true, force: true });
  }
});

test('holdfast --help and --version answer without starting anything', async () => {
  const version = await new Promise<string>((resolve) => {
    const c = spawn(process.execPath, [CLI, '--version']);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', () => resolve(out.trim()));
  });
  assert.match(version, /^\d+\.\d+\.\d+$/);
});

test('npm start serves the bundled example, as the README says', async () => {
  const registry = mkdtempSync(join(tmpdir(), 'hf-reg-'));
  const child = spawn('npm', ['start', '--', '--port', '0', '--address', '127.0.0.1', '--name', `npmstart${process.pid}`], {
    cwd: REPO_ROOT,
    env: { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // npm runs holdfast under a shell: stop the whole group at the end
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    // npm start builds first (tsc --incremental), which takes a while on a busy machine.
    const port = await waitFor('npm start to listen', () => Number(/"port":(\d+)[^\n]*serving/.exec(out)?.[1]) || (/"app_pid":\d+.*ready/.test(out) && undefined), 120_000);
    await waitFor('the example process', () => /ready \(generation/.test(out), 30_000);
    const r = await get(`http://127.0.0.1:${port}/`);
    assert.equal(r.status, 200);
    assert.match(r.body, /Hello from holdfast/);
  } finally {
    process.kill(-child.pid!, 'SIGTERM');
    await exited;
    rmSync(registry, { recursive: true, force: true });
  }
  const appPids = [...out.matchAll(/"app_pid":(\d+)[^\n]*ready/g)].map((m) => Number(m[1]));
  assert.ok(appPids.length > 0);
  await waitFor('the example process to go', () => appPids.every((p) => !pidAlive(p)), 10_000);
});
