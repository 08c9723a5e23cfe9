// Operating a running holdfast (issue 4): status, restart, restart.txt, tokens, several instances.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppDir } from '../helpers/apps';
import { Holdfast, get, pidAlive, runCli, waitFor, stopClean } from '../helpers/holdfast';
import { fixtureApp } from '../helpers/paths';

test('status and status --json show the app, its processes and real numbers that rise with requests', async () => {
  const hf = await Holdfast.start(fixtureApp('hello'), ['--min-instances', '2']);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    const before = await hf.status();
    assert.equal(before.groups[0]!.processes.length, 2);
    for (let i = 0; i < 10; i++) assert.equal((await get(hf.url('/'))).status, 200);
    const after = await hf.status();
    const processed = after.groups[0]!.processes.reduce((n, p) => n + p.processed, 0);
    assert.equal(processed, 10);
    const text = await hf.cli(['status']);
    assert.equal(text.code, 0);
    for (const want of ['Version', 'Instance', 'Max pool size', 'Processes', fixtureApp('hello'), 'PID', 'Processed']) {
      assert.ok(text.stdout.toLowerCase().includes(want.toLowerCase()), `status shows ${want}:\n${text.stdout}`);
    }
    for (const p of after.groups[0]!.processes) assert.ok(text.stdout.includes(String(p.pid)));
  } finally {
    await stopClean(hf);
  }
});

/** The restarts of a Node app and of a Rack app (config.ru through the Rack loader, smart-spawned). */
for (const { kind, name, bootMs } of [
  { kind: 'node' as const, name: 'Node app', bootMs: 15_000 },
  { kind: 'rack' as const, name: 'Rack app', bootMs: 30_000 },
]) {
  test(`${name}: holdfast restart after changing the app: new pids, a new generation, the new code answers, exit 0`, async () => {
    const app = new AppDir('good', 'v1', kind);
    const hf = await Holdfast.start(app.dir, ['--min-instances', '2']);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
      const oldPids = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
      assert.match((await get(hf.url('/'))).body, /version v1/);
      app.deploy('good', 'v2');
      const r = await hf.cli(['restart']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const s = await hf.status();
      assert.equal(s.groups[0]!.generation, 2);
      const newPids = s.groups[0]!.processes.map((p) => p.pid);
      assert.equal(newPids.length, 2);
      assert.ok(newPids.every((p) => !oldPids.includes(p)));
      assert.ok(oldPids.every((p) => !pidAlive(p)));
      assert.match((await get(hf.url('/'))).body, /version v2/);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });
  test(`${name}: a restart into a syntax error exits non-zero with the SyntaxError, logs it, and visitors get the 503 page`, async () => {
    const app = new AppDir('good', 'v1', kind);
    const hf = await Holdfast.start(app.dir);
    try {
      app.deploy('syntax-error', 'v2');
      const r = await hf.cli(['restart']);
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /SyntaxError/);
      await hf.waitForLog('the SyntaxError in the log', (l) => /SyntaxError/.test(l.msg));
      const page = await get(hf.url('/'));
      assert.equal(page.status, 503);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });
  test(`${name}: touching tmp/restart.txt with no traffic replaces the processes within 10 s`, async () => {
    const app = new AppDir('good', 'v1', kind);
    mkdirSync(join(app.dir, 'tmp'));
    const hf = await Holdfast.start(app.dir);
    try {
      const [oldPid] = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
      app.deploy('good', 'v2');
      const file = join(app.dir, 'tmp', 'restart.txt');
      writeFileSync(file, '');
      const t = new Date();
      utimesSync(file, t, t);
      await waitFor('a new generation', async () => {
        const s = await hf.status();
        const g = s.groups[0]!;
        return g.generation === 2 && g.processes.length > 0 && g.processes.every((p) => p.generation === 2 && p.state === 'enabled');
      }, 10_000, 250);
      assert.ok(!pidAlive(oldPid!));
      assert.match((await get(hf.url('/'))).body, /version v2/);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });
}

function adminRequest(socketPath: string, method: string, path: string, token: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

test('admin requests without a token, with a wrong one, or with the read-only token asking to restart change nothing', async () => {
  const hf = await Holdfast.start(fixtureApp('hello'));
  try {
    const dir = join(hf.registryDir, hf.name);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'admin_token')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'read_token')).mode & 0o777, 0o600);
    const info = JSON.parse(readFileSync(join(dir, 'instance.json'), 'utf8')) as { socket_path: string };
    const readToken = readFileSync(join(dir, 'read_token'), 'utf8').trim();
    const pids = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
    assert.equal((await adminRequest(info.socket_path, 'POST', '/restart', undefined)).status, 401);
    assert.equal((await adminRequest(info.socket_path, 'POST', '/restart', 'not-the-token')).status, 401);
    assert.equal((await adminRequest(info.socket_path, 'POST', '/restart', readToken)).status, 403);
    assert.equal((await adminRequest(info.socket_path, 'POST', '/stop', readToken)).status, 403);
    assert.equal((await adminRequest(info.socket_path, 'GET', '/status', undefined)).status, 401);
    assert.equal((await adminRequest(info.socket_path, 'GET', '/status', readToken)).status, 200);
    const s = await hf.status();
    assert.equal(s.groups[0]!.generation, 1, 'nothing restarted');
    assert.deepEqual(s.groups[0]!.processes.map((p) => p.pid), pids);
  } finally {
    await stopClean(hf);
  }
});

test('two instances with different names run at once; --name reaches each and stop stops only that one', async () => {
  const registryDir = mkdtempSync(join(tmpdir(), 'hf-reg-'));
  const a = await Holdfast.start(fixtureApp('hello'), [], { name: 'alpha', registryDir });
  const b = await Holdfast.start(fixtureApp('hello'), [], { name: 'beta', registryDir });
  try {
    const env = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registryDir };
    const sa = JSON.parse((await runCli(['status', '--json', '--name', 'alpha'], env)).stdout) as { instance: { name: string; port: number } };
    const sb = JSON.parse((await runCli(['status', '--json', '--name', 'beta'], env)).stdout) as { instance: { name: string; port: number } };
    assert.equal(sa.instance.name, 'alpha');
    assert.equal(sb.instance.port, b.port);
    const ambiguous = await runCli(['status'], env);
    assert.equal(ambiguous.code, 1);
    assert.match(ambiguous.stderr, /alpha/);
    assert.match(ambiguous.stderr, /beta/);
    const stop = await runCli(['stop', '--name', 'alpha'], env);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await a.exited).code, 0);
    assert.equal((await get(b.url('/'))).status, 200, 'beta still serves');
  } finally {
    await stopClean(a);
    await stopClean(b);
    rmSync(registryDir, { recursive: true, force: true });
  }
});

test('the readiness path answers 200 while a process can serve, 503 when none can, and is never forwarded to the app', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--readiness-path', '/_holdfast/ready']);
  try {
    const ok = await get(hf.url('/_holdfast/ready'));
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'ready\n');
    assert.match((await get(hf.url('/other'))).body, /version v1/, 'other paths go to the app');
    // A plain restart into a broken version leaves nothing that can serve.
    app.deploy('exit-at-start', 'v2');
    assert.notEqual((await hf.cli(['restart'])).code, 0);
    const down = await get(hf.url('/_holdfast/ready'));
    assert.equal(down.status, 503);
    assert.equal(down.body, 'not ready\n');
  } finally {
    await stopClean(hf);
    app.remove();
  }
});
