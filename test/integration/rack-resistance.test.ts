// The rolling-restart and resistance cases of resistance.test.ts, on a Rack app (a config.ru
// served through the Rack loader, smart-spawned), with a load generator running throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppDir, ReleasesDir } from '../helpers/apps';
import type { Variant } from '../helpers/apps';
import { Holdfast, get, pidAlive, waitFor, stopClean } from '../helpers/holdfast';
import { goodRollingDeploy, underLoad } from '../helpers/deploy';

const RESIST = ['--rolling-restarts', '--resist-deployment-errors'];
// Rack processes serve one request at a time, so load grows the pool on demand; 4 connections keep
// it below max_pool_size, where a rolling restart would first retire an old process to make room.
const CONNECTIONS = 4;

test('a good rolling deploy of a Rack app (3 processes, 16 connections) replaces every process with 0 failed requests', async () => {
  const app = new AppDir('good', 'v1', 'rack');
  // max_pool_size 3: one request at a time per process, so 16 connections would grow the pool.
  const hf = await Holdfast.start(app.dir, ['--min-instances', '3', '--max-pool-size', '3', ...RESIST]);
  try {
    await waitFor('three processes', () => hf.appPids.size >= 3, 30_000);
    const load = await goodRollingDeploy(hf, app, 'v2');
    assert.ok(load.requests > 200, `only ${load.requests} requests`);
    assert.ok([...load.bodies.keys()].some((b) => b.includes('v1')) && [...load.bodies.keys()].some((b) => b.includes('v2')));
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

const BROKEN: Array<[Variant, string[], RegExp]> = [
  ['syntax-error', [], /SyntaxError/],
  ['exit-at-start', [], /cannot connect to the database/],
  ['hang', ['--start-timeout', '3'], /within 3 s/],
  ['crash-after-ready', ['--probation-time', '3'], /crashing after boot|code 3/],
];

for (const [variant, extra, evidence] of BROKEN) {
  test(`a broken Rack deploy (${variant}) under load fails no request, keeps the old processes serving and enters resistance`, async () => {
    const app = new AppDir('good', 'v1', 'rack');
    const hf = await Holdfast.start(app.dir, ['--min-instances', '2', ...RESIST, ...extra]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
      let before: number[] = [];
      const { value: r, load } = await underLoad(hf, CONNECTIONS, async () => {
        before = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
        app.deploy(variant, 'v2');
        return hf.cli(['restart']);
      });
      assert.notEqual(r.code, 0, 'restart exits non-zero so a deploy script stops');
      assert.match(r.stdout + r.stderr, evidence);
      assert.equal(load.failed, 0, load.errors.join('\n'));
      assert.ok(load.ok > 50);
      const g = (await hf.status()).groups[0]!;
      assert.ok(g.resisting_deployment_error, 'resisting');
      assert.ok(before.every(pidAlive), 'the old processes still serve');
      assert.ok(g.processes.every((p) => p.generation === 1));
      assert.match((await hf.cli(['status'])).stdout, /Resisting deployment error/);
      const id = g.resisting_deployment_error!.error.error_id;
      assert.ok(hf.lines.some((l) => l.error_id === id && evidence.test(l.msg)), 'the log holds the error with its output');
      assert.match((await get(hf.url('/'))).body, /version v1/);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });
}

test('a fixed Rack deploy and restart clears the flag and the new version serves; resume clears it without a restart', async () => {
  const app = new AppDir('good', 'v1', 'rack');
  const hf = await Holdfast.start(app.dir, ['--min-instances', '2', ...RESIST]);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
    app.deploy('exit-at-start', 'v2');
    assert.notEqual((await hf.cli(['restart'])).code, 0);
    assert.ok((await hf.status()).groups[0]!.resisting_deployment_error);
    app.deploy('good', 'v3');
    const fixed = await hf.cli(['restart']);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.equal((await hf.status()).groups[0]!.resisting_deployment_error, null);
    assert.match((await get(hf.url('/'))).body, /version v3/);
    app.deploy('syntax-error', 'v4');
    assert.notEqual((await hf.cli(['restart'])).code, 0);
    const resumed = await hf.cli(['resume']);
    assert.equal(resumed.code, 0);
    assert.equal((await hf.status()).groups[0]!.resisting_deployment_error, null);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('Capistrano layout, Rack app: while resisting a broken release, kill -9 of an old process is replaced from the old release', async () => {
  const rel = new ReleasesDir('good', 'v1', 'rack');
  const hf = await Holdfast.start(rel.current, ['--min-instances', '2', ...RESIST]);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 30_000);
    rel.deploy('syntax-error', 'v2');
    assert.notEqual((await hf.cli(['restart'])).code, 0);
    const victim = (await hf.status()).groups[0]!.processes[0]!.pid;
    process.kill(victim, 'SIGKILL');
    await waitFor('the replacement', async () => {
      const ps = (await hf.status()).groups[0]!.processes;
      return ps.length === 2 && !ps.some((p) => p.pid === victim) && ps.every((p) => p.state === 'enabled');
    }, 20_000, 250);
    const s = await hf.status();
    assert.ok(s.groups[0]!.resisting_deployment_error, 'still resisting');
    for (let i = 0; i < 6; i++) assert.match((await get(hf.url('/'))).body, /version v1/);
    assert.ok(readFileSync(join(rel.root, 'releases/2/config.ru'), 'utf8').includes('broken'));
  } finally {
    await stopClean(hf);
    rel.remove();
  }
});
