import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  createInstance,
  findInstance,
  listInstances,
  pidAlive,
  type Instance,
  type InstanceInfo,
} from '../../../src/admin/instance';
import { HoldfastError } from '../../../src/errors';

async function tempRegistry(t: TestContext): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'hf-reg-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  return join(base, 'registry');
}

/** Makes the instance live: something answers on its socket. */
async function answer(t: TestContext, instance: Instance): Promise<Server> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(instance.socketPath, resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.ok(child.pid && !pidAlive(child.pid));
  return child.pid;
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function writeInfo(dir: string, info: Partial<InstanceInfo>): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const full: InstanceInfo = {
    name: 'x',
    pid: 1,
    address: '127.0.0.1',
    port: 3000,
    app_root: '/app',
    version: '0.1.0',
    started_at: new Date().toISOString(),
    socket_path: join(dir, 'admin.sock'),
    ...info,
  };
  writeFileSync(join(dir, 'instance.json'), JSON.stringify(full));
}

function codeOf(e: unknown): string | undefined {
  return e instanceof HoldfastError ? e.code : undefined;
}

test('an instance dir is 0700 and holds instance.json and two different 0600 tokens', async (t) => {
  const registry = await tempRegistry(t);
  const instance = await createInstance({ name: 'shop', registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/srv/shop' });
  t.after(() => instance.remove());
  assert.equal(mode(registry), 0o700);
  assert.equal(instance.dir, join(registry, 'shop'));
  assert.equal(mode(instance.dir), 0o700);
  for (const file of ['read_token', 'admin_token', 'instance.json']) assert.equal(mode(join(instance.dir, file)), 0o600, file);
  assert.equal(readFileSync(join(instance.dir, 'read_token'), 'utf8').trim(), instance.readToken);
  assert.equal(readFileSync(join(instance.dir, 'admin_token'), 'utf8').trim(), instance.adminToken);
  assert.notEqual(instance.readToken, instance.adminToken);
  assert.ok(instance.adminToken.length >= 40);
  assert.equal(instance.socketPath, join(instance.dir, 'admin.sock'));
  const info = JSON.parse(readFileSync(join(instance.dir, 'instance.json'), 'utf8')) as InstanceInfo;
  assert.match(info.marker ?? '', /^[0-9a-f]{32}$/, 'a random marker proves the dir is this instance\'s');
  assert.deepEqual({ ...info, started_at: 'x', version: 'x', marker: 'x' }, {
    name: 'shop',
    pid: process.pid,
    address: '0.0.0.0',
    port: 3000,
    app_root: '/srv/shop',
    version: 'x',
    started_at: 'x',
    socket_path: instance.socketPath,
    marker: 'x',
  });
  assert.ok(Number.isFinite(Date.parse(info.started_at)));
});

test('update rewrites instance.json with the port bound later', async (t) => {
  const registry = await tempRegistry(t);
  const instance = await createInstance({ name: 'shop', registryDir: registry, address: '0.0.0.0', port: 0, appRoot: '/srv/shop' });
  t.after(() => instance.remove());
  await instance.update({ port: 41234 });
  assert.equal(instance.info.port, 41234);
  assert.equal((JSON.parse(readFileSync(join(instance.dir, 'instance.json'), 'utf8')) as InstanceInfo).port, 41234);
});

test('remove deletes the instance dir and can be called twice', async (t) => {
  const registry = await tempRegistry(t);
  const instance = await createInstance({ name: 'shop', registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/srv/shop' });
  await instance.remove();
  await instance.remove();
  assert.equal(existsSync(instance.dir), false);
});

test('a name taken by a live instance is refused with its pid and a hint to use --name', async (t) => {
  const registry = await tempRegistry(t);
  const first = await createInstance({ name: 'shop', registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/srv/shop' });
  t.after(() => first.remove());
  await answer(t, first);
  await assert.rejects(
    createInstance({ name: 'shop', registryDir: registry, address: '0.0.0.0', port: 3001, appRoot: '/srv/other' }),
    (e: unknown) => {
      assert.equal(codeOf(e), 'HF_INSTANCE_EXISTS');
      assert.match((e as Error).message, /"shop"/);
      assert.match((e as Error).message, new RegExp(`pid ${process.pid}`));
      assert.match((e as Error).message, /--name/);
      assert.doesNotMatch((e as Error).message, /\n/);
      return true;
    },
  );
  // the live instance's files are untouched
  assert.equal(readFileSync(join(first.dir, 'admin_token'), 'utf8').trim(), first.adminToken);
});

test('the stale dir of a dead instance is cleaned by listing and taken over by a new instance', async (t) => {
  const registry = await tempRegistry(t);
  writeInfo(join(registry, 'gone'), { name: 'gone', pid: deadPid() });
  writeInfo(join(registry, 'shop'), { name: 'shop', pid: deadPid() });
  assert.deepEqual(await listInstances(registry), []);
  assert.equal(existsSync(join(registry, 'gone')), false);
  assert.equal(existsSync(join(registry, 'shop')), false);

  writeInfo(join(registry, 'shop'), { name: 'shop', pid: deadPid() });
  const instance = await createInstance({ name: 'shop', registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/srv/shop' });
  t.after(() => instance.remove());
  assert.equal(instance.info.pid, process.pid);
});

test('a dir without instance.json is left alone while young and cleaned once old', async (t) => {
  const registry = await tempRegistry(t);
  mkdirSync(join(registry, 'young'), { recursive: true });
  assert.deepEqual(await listInstances(registry), []);
  assert.equal(existsSync(join(registry, 'young')), true);
  const old = join(registry, 'old');
  mkdirSync(old);
  const past = new Date(Date.now() - 60_000);
  const { utimesSync } = await import('node:fs');
  utimesSync(old, past, past);
  await listInstances(registry);
  assert.equal(existsSync(old), false);
});

test('an instance whose pid lives but whose socket is silent is not listed; a young one keeps its name, an old one loses it', async (t) => {
  const registry = await tempRegistry(t);
  writeInfo(join(registry, 'starting'), { name: 'starting', pid: process.pid });
  writeInfo(join(registry, 'hung'), { name: 'hung', pid: process.pid, started_at: new Date(Date.now() - 120_000).toISOString() });
  assert.deepEqual(await listInstances(registry), []);
  assert.equal(existsSync(join(registry, 'starting')), true);
  await assert.rejects(
    createInstance({ name: 'starting', registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/a' }),
    (e: unknown) => codeOf(e) === 'HF_INSTANCE_EXISTS',
  );
  await assert.rejects(findInstance('starting', registry), (e: unknown) => {
    assert.equal(codeOf(e), 'HF_INSTANCE_NOT_FOUND');
    assert.match((e as Error).message, /does not answer on its admin socket/);
    return true;
  });
  const taken = await createInstance({ name: 'hung', registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/a' });
  t.after(() => taken.remove());
  assert.equal(taken.info.app_root, '/a');
});

test('finding with no instance running says so in one line', async (t) => {
  const registry = await tempRegistry(t);
  await assert.rejects(findInstance(undefined, registry), (e: unknown) => {
    assert.equal(codeOf(e), 'HF_INSTANCE_NOT_FOUND');
    assert.match((e as Error).message, /no running holdfast instance/);
    return true;
  });
});

test('finding without a name picks the only live instance and refuses to guess among several', async (t) => {
  const registry = await tempRegistry(t);
  const a = await createInstance({ name: 'alpha', registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/srv/alpha' });
  t.after(() => a.remove());
  await answer(t, a);
  assert.equal((await findInstance(undefined, registry)).name, 'alpha');

  const b = await createInstance({ name: 'beta', registryDir: registry, address: '127.0.0.1', port: 3001, appRoot: '/srv/beta' });
  t.after(() => b.remove());
  await answer(t, b);
  await assert.rejects(findInstance(undefined, registry), (e: unknown) => {
    assert.equal(codeOf(e), 'HF_INSTANCE_AMBIGUOUS');
    const message = (e as Error).message;
    assert.match(message, /alpha \(pid \d+, 0\.0\.0\.0:3000, \/srv\/alpha\)/);
    assert.match(message, /beta \(pid \d+, 127\.0\.0\.1:3001, \/srv\/beta\)/);
    assert.match(message, /--name/);
    return true;
  });
  const found = await findInstance('beta', registry);
  assert.equal(found.name, 'beta');
  assert.equal(found.dir, b.dir);
  assert.equal(found.socket_path, b.socketPath);
  assert.deepEqual((await listInstances(registry)).map((i) => i.name), ['alpha', 'beta']);

  await assert.rejects(findInstance('gamma', registry), (e: unknown) => {
    assert.equal(codeOf(e), 'HF_INSTANCE_NOT_FOUND');
    assert.match((e as Error).message, /"gamma".*running: alpha .*beta /);
    return true;
  });
});

test('a registry path too long for a Unix socket puts the socket in a short private dir, removed with the instance', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'hf-reg-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const registry = join(base, 'a-rather-long-directory-name-'.repeat(4));
  const instance = await createInstance({ name: 'shop', registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/srv/shop' });
  assert.ok(Buffer.byteLength(instance.socketPath) <= 103, instance.socketPath);
  assert.notEqual(dirname(instance.socketPath), instance.dir);
  assert.equal(mode(dirname(instance.socketPath)), 0o700);
  assert.equal(instance.info.socket_path, instance.socketPath);
  await answer(t, instance);
  assert.equal((await findInstance('shop', registry)).socket_path, instance.socketPath);
  await instance.remove();
  assert.equal(existsSync(dirname(instance.socketPath)), false);
  assert.equal(existsSync(instance.dir), false);
});

test('an instance name that is not a plain file name is refused', async (t) => {
  const registry = await tempRegistry(t);
  for (const name of ['', '../x', 'a/b', '.hidden', 'x'.repeat(65)]) {
    await assert.rejects(
      createInstance({ name, registryDir: registry, address: '0.0.0.0', port: 3000, appRoot: '/a' }),
      (e: unknown) => codeOf(e) === 'HF_CONFIG_INVALID',
      name,
    );
  }
});
