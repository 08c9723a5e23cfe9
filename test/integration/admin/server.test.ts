// The real admin server on a real Unix socket in a temporary registry, with a fake Control.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusDocument } from '../../../src/admin/api';
import { AdminClient, connectAdmin } from '../../../src/admin/client';
import { createInstance, type Instance } from '../../../src/admin/instance';
import { startAdminServer, type AdminRoute, type AdminServer } from '../../../src/admin/server';
import type { RestartOutcome, RestartProgress } from '../../../src/core/operations';
import { AdminError, CapacityError, HoldfastError } from '../../../src/errors';
import { silentLogger } from '../../../src/log/logger';
import { FakeControl } from '../../helpers/fake-control';
import { groupSnapshot, poolSnapshot, restartingGroup, spawnErrorSnapshot } from '../../helpers/status-fixtures';

interface Fixture {
  registry: string;
  instance: Instance;
  control: FakeControl;
  server: AdminServer;
}

async function start(t: TestContext, opts: { control?: FakeControl; routes?: AdminRoute[] } = {}): Promise<Fixture> {
  const base = await mkdtemp(join(tmpdir(), 'hf-admin-'));
  const registry = join(base, 'registry');
  const instance = await createInstance({ name: 'shop', registryDir: registry, address: '127.0.0.1', port: 3000, appRoot: '/srv/shop/current' });
  const control = opts.control ?? new FakeControl();
  const server = await startAdminServer({
    instance,
    control,
    logger: silentLogger(),
    version: '9.9.9',
    closeGraceMs: 300,
    ...(opts.routes ? { routes: opts.routes } : {}),
  });
  t.after(async () => {
    await server.close();
    await instance.remove();
    await rm(base, { recursive: true, force: true });
  });
  return { registry, instance, control, server };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => unknown;
}

function call(socketPath: string, method: string, path: string, opts: { token?: string; authorization?: string; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.authorization !== undefined) headers.authorization = opts.authorization;
    else if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const req = request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function errorOf(a: Answer): { code: string; message: string } {
  return (a.json() as { error: { code: string; message: string } }).error;
}

async function until(cond: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const MUTATIONS: Array<[string, string]> = [
  ['/restart', '{"rolling":true,"wait":true}'],
  ['/resume', '{}'],
  ['/stop', '{}'],
];

test('the admin socket is a 0600 file inside the 0700 instance dir', async (t) => {
  const { instance } = await start(t);
  assert.equal(statSync(instance.socketPath).mode & 0o777, 0o600);
  assert.equal(statSync(instance.dir).mode & 0o777, 0o700);
});

test('a request without a token, with a wrong one or a malformed header gets 401 and changes nothing', async (t) => {
  const { instance, control } = await start(t);
  const attempts: Array<{ token?: string; authorization?: string }> = [
    {},
    { token: 'wrong' },
    { token: instance.adminToken + 'x' },
    { token: instance.adminToken.slice(0, -1) },
    { authorization: `Basic ${instance.adminToken}` },
    { authorization: `Bearer ${instance.adminToken} extra` },
    { authorization: 'Bearer' },
  ];
  for (const [path, body] of MUTATIONS) {
    for (const auth of attempts) {
      const a = await call(instance.socketPath, 'POST', path, { ...auth, body });
      assert.equal(a.status, 401, `${path} ${JSON.stringify(auth)}`);
      assert.equal(errorOf(a).code, 'HF_ADMIN_UNAUTHORIZED');
    }
  }
  const status = await call(instance.socketPath, 'GET', '/status');
  assert.equal(status.status, 401);
  assert.deepEqual(control.calls, []);
  assert.equal(control.tickets.length, 0);
});

test('the read-only token may not restart, resume or stop: 403 and nothing recorded', async (t) => {
  const { instance, control } = await start(t);
  for (const [path, body] of MUTATIONS) {
    const a = await call(instance.socketPath, 'POST', path, { token: instance.readToken, body });
    assert.equal(a.status, 403, path);
    assert.equal(errorOf(a).code, 'HF_ADMIN_FORBIDDEN');
    assert.match(a.headers['content-type'] as string, /^application\/json/);
  }
  assert.deepEqual(control.calls, []);
});

test('a token of another instance is refused', async (t) => {
  const one = await start(t);
  const two = await start(t);
  const a = await call(one.instance.socketPath, 'POST', '/stop', { token: two.instance.adminToken, body: '{}' });
  assert.equal(a.status, 401);
  assert.deepEqual(one.control.calls, []);
});

test('status answers the read token with the version, the instance, the date and the pool snapshot', async (t) => {
  const control = new FakeControl({ pool: poolSnapshot([restartingGroup()]) });
  const { instance } = await start(t, { control });
  const before = Date.now();
  const a = await call(instance.socketPath, 'GET', '/status', { token: instance.readToken });
  assert.equal(a.status, 200);
  assert.equal(a.headers['cache-control'], 'no-store');
  const doc = a.json() as StatusDocument;
  assert.deepEqual(Object.keys(doc), ['version', 'instance', 'date', 'max_pool_size', 'process_count', 'requests_in_top_level_queue', 'groups']);
  assert.equal(doc.version, '9.9.9');
  assert.deepEqual({ ...doc.instance, started_at: 'x', uptime_seconds: 0 }, {
    name: 'shop',
    pid: process.pid,
    address: '127.0.0.1',
    port: 3000,
    started_at: 'x',
    uptime_seconds: 0,
  });
  assert.equal(doc.instance.started_at, instance.info.started_at);
  assert.ok(doc.instance.uptime_seconds >= 0 && doc.instance.uptime_seconds < 60);
  assert.ok(Date.parse(doc.date) >= before - 1000);
  const { version: _v, instance: _i, date: _d, ...pool } = doc;
  assert.deepEqual(pool, control.snapshot());
  assert.deepEqual(control.calls, []);
});

test('status also answers the admin token, and shows a port updated after start', async (t) => {
  const { instance, registry } = await start(t);
  await instance.update({ port: 45678 });
  const client = await connectAdmin({ name: 'shop', registryDir: registry, access: 'admin' });
  assert.equal((await client.status()).instance.port, 45678);
});

test('restart with wait streams each progress step as it happens, then the outcome', async (t) => {
  const { control, registry } = await start(t);
  const client = await connectAdmin({ name: 'shop', registryDir: registry, access: 'admin' });
  const seen: RestartProgress[] = [];
  const outcomePromise = client.restart({ rolling: true, onProgress: (p) => seen.push(p) });
  await until(() => control.tickets.length === 1, 'the restart to reach the control');
  assert.deepEqual(control.calls, [{ method: 'restart', rolling: true }]);
  const ticket = control.tickets[0]!;
  const steps: RestartProgress[] = [0, 1, 2].map((replaced) => ({ kind: 'rolling', generation: 4, total: 2, replaced }));
  for (const [i, step] of steps.entries()) {
    ticket.progress(step);
    // each step reaches the client before the restart has finished
    await until(() => seen.length === i + 1, `progress step ${i}`);
  }
  const outcome: RestartOutcome = { outcome: 'succeeded', kind: 'rolling', generation: 4, replaced: 2, total: 2, error: null };
  ticket.finish(outcome);
  assert.deepEqual(await outcomePromise, outcome);
  assert.deepEqual(seen, steps);
});

test('restart with wait sends the lines as NDJSON, the last one being the outcome with its spawn error', async (t) => {
  const error = spawnErrorSnapshot();
  const outcome: RestartOutcome = { outcome: 'resisted', kind: 'rolling', generation: 4, replaced: 1, total: 2, error };
  const control = new FakeControl({ script: { steps: [{ kind: 'rolling', generation: 4, total: 2, replaced: 0 }], outcome, stepMs: 1 } });
  const { instance } = await start(t, { control });
  const a = await call(instance.socketPath, 'POST', '/restart', { token: instance.adminToken, body: '{"wait":true}' });
  assert.equal(a.status, 200);
  assert.match(a.headers['content-type'] as string, /^application\/x-ndjson/);
  const lines = a.text.trim().split('\n').map((l) => JSON.parse(l) as unknown);
  assert.deepEqual(lines, [
    { type: 'progress', kind: 'rolling', generation: 4, total: 2, replaced: 0 },
    { type: 'outcome', ...outcome },
  ]);
  assert.deepEqual(control.calls, [{ method: 'restart', rolling: undefined }]);
});

test('restart with wait ends with an error line when the restart itself throws', async (t) => {
  const { control, registry } = await start(t);
  const client = await connectAdmin({ name: 'shop', registryDir: registry, access: 'admin' });
  const outcome = client.restart({});
  await until(() => control.tickets.length === 1, 'the restart');
  control.tickets[0]!.fail(new HoldfastError('HF_INTERNAL', 'the restart of generation 5 broke'));
  await assert.rejects(outcome, (e: unknown) => e instanceof AdminError && e.code === 'HF_INTERNAL' && /generation 5/.test(e.message));
});

test('restart without wait is accepted at once with the generation it restarts to', async (t) => {
  const control = new FakeControl({ pool: poolSnapshot([restartingGroup()]) });
  const { instance, registry } = await start(t, { control });
  const a = await call(instance.socketPath, 'POST', '/restart', { token: instance.adminToken, body: '{"rolling":false}' });
  assert.equal(a.status, 202);
  assert.deepEqual(a.json(), { accepted: true, kind: 'rolling', generation: 4 });
  assert.deepEqual(control.calls, [{ method: 'restart', rolling: false }]);

  // A ticket that reports its start right after restart() returns: its generation wins over the snapshot's.
  const restart = control.restart.bind(control);
  control.restart = (options) => {
    const ticket = restart(options);
    queueMicrotask(() => control.tickets.at(-1)!.progress({ kind: 'plain', generation: 5, total: 1, replaced: 0 }));
    return ticket;
  };
  const client = await connectAdmin({ name: 'shop', registryDir: registry, access: 'admin' });
  assert.deepEqual(await client.restart({ wait: false }), { accepted: true, kind: 'plain', generation: 5 });
});

test('a malformed restart request gets 400 and starts nothing', async (t) => {
  const { instance, control } = await start(t);
  for (const body of ['{not json', '[]', '"x"', '{"rolling":"yes"}', '{"rolling_restart":true}']) {
    const a = await call(instance.socketPath, 'POST', '/restart', { token: instance.adminToken, body });
    assert.equal(a.status, 400, body);
    assert.equal(errorOf(a).code, 'HF_ADMIN_BAD_REQUEST');
  }
  const big = await call(instance.socketPath, 'POST', '/restart', { token: instance.adminToken, body: JSON.stringify({ x: 'y'.repeat(70_000) }) });
  assert.equal(big.status, 413);
  const stop = await call(instance.socketPath, 'POST', '/stop', { token: instance.adminToken, body: '{"now":true}' });
  assert.equal(stop.status, 400);
  assert.deepEqual(control.calls, []);
});

test('an error thrown by the control becomes its envelope and status', async (t) => {
  const control = new FakeControl();
  control.restart = () => {
    throw new CapacityError('HF_SHUTTING_DOWN', 'holdfast is stopping');
  };
  control.resume = () => {
    throw new Error('boom');
  };
  const { instance } = await start(t, { control });
  const a = await call(instance.socketPath, 'POST', '/restart', { token: instance.adminToken, body: '{}' });
  assert.equal(a.status, 503);
  assert.deepEqual(a.json(), { error: { code: 'HF_SHUTTING_DOWN', message: 'holdfast is stopping' } });
  const b = await call(instance.socketPath, 'POST', '/resume', { token: instance.adminToken });
  assert.equal(b.status, 500);
  assert.equal(errorOf(b).code, 'HF_INTERNAL');
});

test('unknown paths get 404, known paths with the wrong method 405, both only after authentication', async (t) => {
  const { instance } = await start(t);
  const missing = await call(instance.socketPath, 'GET', '/nope', { token: instance.readToken });
  assert.equal(missing.status, 404);
  assert.equal(errorOf(missing).code, 'HF_ADMIN_NOT_FOUND');
  const wrongMethod = await call(instance.socketPath, 'GET', '/restart', { token: instance.adminToken });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.allow, 'POST');
  assert.equal((await call(instance.socketPath, 'GET', '/nope')).status, 401);
});

test('resume clears the flag and says whether it was set', async (t) => {
  const { control, registry } = await start(t);
  control.resisting = true;
  const client = await connectAdmin({ name: 'shop', registryDir: registry, access: 'admin' });
  assert.deepEqual(await client.resume(), { was_resisting: true });
  assert.deepEqual(await client.resume(), { was_resisting: false });
  assert.deepEqual(control.calls, [{ method: 'resume' }, { method: 'resume' }]);
});

test('stop answers 202 first and then stops the control once', async (t) => {
  let stopped = 0;
  const control = new FakeControl({ onStop: async () => void stopped++ });
  const { instance, registry } = await start(t, { control });
  const client = await connectAdmin({ name: 'shop', registryDir: registry, access: 'admin' });
  assert.deepEqual(await client.stop(), { stopping: true, pid: instance.info.pid });
  await until(() => stopped === 1, 'the control to stop');
  await client.stop();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(stopped, 1);
});

test('the client reports a refused token as an admin error', async (t) => {
  const { instance } = await start(t);
  const client = new AdminClient({ ...instance.info, dir: instance.dir }, 'nope');
  await assert.rejects(client.status(), (e: unknown) => e instanceof AdminError && e.code === 'HF_ADMIN_UNAUTHORIZED' && e.status === 401);
  const reader = new AdminClient({ ...instance.info, dir: instance.dir }, instance.readToken);
  await assert.rejects(reader.stop(), (e: unknown) => e instanceof AdminError && e.code === 'HF_ADMIN_FORBIDDEN' && e.status === 403);
});

test('more endpoints plug in as routes with their own access', async (t) => {
  const metrics: AdminRoute = {
    method: 'GET',
    path: '/metrics',
    access: 'read',
    handle: (ctx) => {
      ctx.res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      ctx.res.end(`holdfast_processes ${ctx.control.snapshot().process_count}\n`);
    },
  };
  const { instance } = await start(t, { routes: [metrics] });
  const a = await call(instance.socketPath, 'GET', '/metrics', { token: instance.readToken });
  assert.equal(a.status, 200);
  assert.equal(a.text, 'holdfast_processes 2\n');
  assert.equal((await call(instance.socketPath, 'GET', '/metrics')).status, 401);
});

test('close cuts a restart stream that outlives the grace period, and can be called twice', async (t) => {
  const { control, registry, server } = await start(t);
  const client = await connectAdmin({ name: 'shop', registryDir: registry, access: 'admin' });
  const outcome = client.restart({});
  await until(() => control.tickets.length === 1, 'the restart');
  const started = Date.now();
  await Promise.all([server.close(), server.close()]);
  assert.ok(Date.now() - started < 2000);
  await assert.rejects(outcome, (e: unknown) => e instanceof HoldfastError);
  await assert.rejects(connectAdmin({ name: 'shop', registryDir: registry, access: 'read' }).then((c) => c.status()), (e: unknown) => e instanceof HoldfastError);
});

test('a status snapshot with no processes is served as is', async (t) => {
  const control = new FakeControl({ pool: poolSnapshot([groupSnapshot({ processes: [] })]) });
  const { registry } = await start(t, { control });
  const client = await connectAdmin({ name: 'shop', registryDir: registry, access: 'read' });
  const doc = await client.status();
  assert.equal(doc.process_count, 0);
  assert.deepEqual(doc.groups[0]!.processes, []);
});
