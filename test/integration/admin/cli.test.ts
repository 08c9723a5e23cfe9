// The real bin/holdfast against stand-in instances (test/helpers/admin-harness): a real instance
// dir and admin server per process, a fake Control behind each.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusDocument } from '../../../src/admin/api';
import { pidAlive } from '../../../src/admin/instance';
import { CLI } from '../../helpers/paths';

const HARNESS = join(__dirname, '../../helpers/admin-harness.js');

interface Harness {
  name: string;
  pid: number;
  child: ChildProcess;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Env {
  registry: string;
  callsFile: string;
  start(name: string, opts?: { scenario?: 'normal' | 'resisting'; restart?: 'succeeded' | 'failed' | 'resisted'; stopDelayMs?: number; port?: number }): Promise<Harness>;
  holdfast(...args: string[]): Promise<Run>;
  calls(): Array<Record<string, unknown>>;
}

async function setup(t: TestContext): Promise<Env> {
  const base = await mkdtemp(join(tmpdir(), 'hf-cli-'));
  const registry = join(base, 'registry');
  const callsFile = join(base, 'calls.ndjson');
  const harnesses: Harness[] = [];
  t.after(async () => {
    for (const h of harnesses) await ensureGone(h);
    for (const h of harnesses) assert.equal(pidAlive(h.pid), false, `harness ${h.name} (pid ${h.pid}) is gone`);
    await rm(base, { recursive: true, force: true });
  });
  return {
    registry,
    callsFile,
    async start(name, opts = {}) {
      const child = spawn(process.execPath, [HARNESS, JSON.stringify({ name, registryDir: registry, callsFile, ...opts })], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const harness: Harness = { name, pid: child.pid!, child };
      harnesses.push(harness);
      await ready(child);
      return harness;
    },
    holdfast: (...args) => run(args, registry),
    calls: () =>
      existsSync(callsFile)
        ? readFileSync(callsFile, 'utf8')
            .trim()
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [],
  };
}

function ready(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`harness not ready in 10 s: ${err}`)), 10_000);
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`harness exited with ${code}: ${err}`));
    });
  });
}

async function ensureGone(h: Harness): Promise<void> {
  if (h.child.exitCode !== null || h.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => h.child.once('exit', () => resolve()));
  h.child.kill('SIGTERM');
  const killer = setTimeout(() => h.child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(killer);
}

function run(args: string[], registry: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One `holdfast: ...` line, no stack trace. */
function assertOneLineError(r: Run, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^holdfast: /);
  assert.match(lines[0]!, pattern);
}

test('status prints the passenger-status picture of the one running instance', async (t) => {
  const env = await setup(t);
  const shop = await env.start('shop');
  const r = await env.holdfast('status');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Version : 0\.1\.0$/m);
  assert.match(r.stdout, /^Date {4}: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/m);
  assert.match(r.stdout, new RegExp(`^Instance: shop \\(pid ${shop.pid}, 127\\.0\\.0\\.1:3000, up \\d+s\\)$`, 'm'));
  assert.match(r.stdout, /^----------- General information -----------$/m);
  assert.match(r.stdout, /^Max pool size : 6$/m);
  assert.match(r.stdout, /^Requests in top-level queue : 0$/m);
  assert.match(r.stdout, /^ {2}App root: \/srv\/shop\/current$/m);
  assert.match(r.stdout, /^ {2}\* PID: 4101 +Gen: 3 +State: enabled +Sessions: 1 +Processed: 1520 +Uptime: 1h 2m 5s$/m);
  assert.doesNotMatch(r.stdout, /Resisting deployment error/);
  assert.equal(r.stderr, '');
});

test('status --json prints the status document as JSON', async (t) => {
  const env = await setup(t);
  const shop = await env.start('shop', { port: 4567 });
  const r = await env.holdfast('status', '--json', '--name', 'shop');
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as StatusDocument;
  assert.equal(doc.version, '0.1.0');
  assert.equal(doc.instance.name, 'shop');
  assert.equal(doc.instance.pid, shop.pid);
  assert.equal(doc.instance.port, 4567);
  assert.equal(doc.max_pool_size, 6);
  assert.equal(doc.groups[0]!.app_root, '/srv/shop/current');
  assert.equal(doc.groups[0]!.resisting_deployment_error, null);
  assert.deepEqual(env.calls(), []);
});

test('status of a resisting instance shows the flag in text and the error in JSON', async (t) => {
  const env = await setup(t);
  await env.start('shop', { scenario: 'resisting' });
  const text = await env.holdfast('status');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^ {2}Resisting deployment error 3f9a2c1e since 2026-03-01 11:58:00 UTC \(for 2m 0s\)$/m);
  assert.match(text.stdout, /\| SyntaxError: Unexpected token ';'/);
  const json = JSON.parse((await env.holdfast('status', '--json')).stdout) as StatusDocument;
  assert.equal(json.groups[0]!.resisting_deployment_error!.error.error_id, '3f9a2c1e');
});

test('restart waits, prints a line per step when not on a terminal, and exits 0 when it succeeded', async (t) => {
  const env = await setup(t);
  await env.start('shop', { restart: 'succeeded' });
  const r = await env.holdfast('restart');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trimEnd().split('\n'), [
    'Restarting /srv/shop/current: 0 of 2 replaced',
    'Restarting /srv/shop/current: 1 of 2 replaced',
    'Restarting /srv/shop/current: 2 of 2 replaced',
    'Restarted /srv/shop/current: 2 of 2 replaced, now generation 4 (rolling restart).',
  ]);
  assert.equal(r.stderr, '');
  assert.deepEqual(env.calls(), [{ instance: 'shop', method: 'restart' }]); // rolling undefined: the configured default
});

test('restart --rolling and --no-rolling pass the choice on', async (t) => {
  const env = await setup(t);
  await env.start('shop');
  assert.equal((await env.holdfast('restart', '--rolling')).code, 0);
  assert.equal((await env.holdfast('restart', '--no-rolling')).code, 0);
  assert.deepEqual(env.calls(), [
    { instance: 'shop', method: 'restart', rolling: true },
    { instance: 'shop', method: 'restart', rolling: false },
  ]);
});

for (const outcome of ['resisted', 'failed'] as const) {
  test(`restart exits 1 when the new version cannot start (${outcome}) and shows the spawn error with the app's output`, async (t) => {
    const env = await setup(t);
    await env.start('shop', { restart: outcome });
    const r = await env.holdfast('restart', '--rolling');
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Restarting \/srv\/shop\/current: 1 of 2 replaced/);
    const lines = r.stderr.split('\n');
    assert.match(lines[0]!, /^holdfast: the rolling restart of \/srv\/shop\/current to generation 4 .*: the app process exited with code 1 before it was ready$/);
    assert.match(r.stderr, /Error id: 3f9a2c1e \(HF_SPAWN_EXITED\)/);
    assert.match(r.stderr, /Cause {3}: exited before it was ready \(exit code 1\)/);
    assert.match(r.stderr, /\| \/srv\/shop\/releases\/20260301115900\/app\.js:3/);
    assert.match(r.stderr, /\| SyntaxError: Unexpected token ';'/);
    assert.doesNotMatch(r.stderr, /dist\/src|at async|AdminClient/); // no stack trace of holdfast itself
  });
}

test('restart --no-wait returns as soon as the restart was accepted', async (t) => {
  const env = await setup(t);
  await env.start('shop', { restart: 'failed' });
  const r = await env.holdfast('restart', '--no-wait');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Restart of instance "shop" accepted \(generation 3\)/);
  assert.equal(env.calls().length, 1);
});

test('resume says whether the instance was resisting', async (t) => {
  const env = await setup(t);
  await env.start('shop', { scenario: 'resisting' });
  const first = await env.holdfast('resume');
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^Resumed instance "shop": it was resisting a deployment error/);
  const second = await env.holdfast('resume');
  assert.equal(second.code, 0);
  assert.match(second.stdout, /was not resisting a deployment error; nothing changed/);
  assert.deepEqual(env.calls(), [
    { instance: 'shop', method: 'resume' },
    { instance: 'shop', method: 'resume' },
  ]);
});

test('with two instances, --name picks one and no name lists both and exits 1', async (t) => {
  const env = await setup(t);
  const alpha = await env.start('alpha', { port: 3001 });
  const beta = await env.start('beta', { port: 3002 });
  const picked = await env.holdfast('status', '--json', '--name', 'beta');
  assert.equal(picked.code, 0, picked.stderr);
  assert.equal((JSON.parse(picked.stdout) as StatusDocument).instance.pid, beta.pid);

  for (const command of [['status'], ['restart'], ['stop']]) {
    const r = await env.holdfast(...command);
    assertOneLineError(r, /2 holdfast instances are running, pick one with --name/);
    assert.match(r.stderr, new RegExp(`alpha \\(pid ${alpha.pid}, 127\\.0\\.0\\.1:3001`));
    assert.match(r.stderr, new RegExp(`beta \\(pid ${beta.pid}, 127\\.0\\.0\\.1:3002`));
    assert.equal(r.stdout, '');
  }
  assert.deepEqual(env.calls(), []);
  assert.ok(pidAlive(alpha.pid) && pidAlive(beta.pid));
});

test('stop stops only the named instance and returns once its process is gone', async (t) => {
  const env = await setup(t);
  const alpha = await env.start('alpha');
  const beta = await env.start('beta', { stopDelayMs: 300 });
  const r = await env.holdfast('stop', '--name', 'beta');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `Stopping instance "beta" (pid ${beta.pid})...\nStopped instance "beta".\n`);
  assert.equal(pidAlive(beta.pid), false);
  assert.equal(existsSync(join(env.registry, 'beta')), false);
  assert.ok(pidAlive(alpha.pid));
  assert.deepEqual(env.calls(), [{ instance: 'beta', method: 'stop' }]);
  const left = await env.holdfast('status', '--json');
  assert.equal(left.code, 0, left.stderr);
  assert.equal((JSON.parse(left.stdout) as StatusDocument).instance.name, 'alpha');
});

test('with no instance running every command says so in one line and exits 1', async (t) => {
  const env = await setup(t);
  for (const command of [['status'], ['status', '--json'], ['restart'], ['resume'], ['stop']]) {
    const r = await env.holdfast(...command);
    assertOneLineError(r, /no running holdfast instance found/);
    assert.equal(r.stdout, '');
  }
});

test('a --name that no instance has is one line naming the ones that run', async (t) => {
  const env = await setup(t);
  await env.start('alpha');
  assertOneLineError(await env.holdfast('status', '--name', 'gamma'), /no running holdfast instance is named "gamma"; running: alpha \(pid/);
  assertOneLineError(await env.holdfast('stop', '--name', '../etc'), /not a valid instance name/);
});

test('the instance of a killed holdfast is cleaned up and not reported', async (t) => {
  const env = await setup(t);
  const shop = await env.start('shop');
  const exited = new Promise((resolve) => shop.child.once('exit', resolve));
  shop.child.kill('SIGKILL');
  await exited;
  assert.equal(existsSync(join(env.registry, 'shop')), true);
  assertOneLineError(await env.holdfast('status'), /no running holdfast instance found/);
  assert.equal(existsSync(join(env.registry, 'shop')), false);
});
