// Deploys that cannot hurt (issue 12), with real processes under load on 127.0.0.1: capacity never
// dips, late crashes are deployment errors with a rollback, a poison request is a crash and not a
// deploy, a health check keeps a release that boots but fails away from visitors, and the hand-off
// path scales without churn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectAdmin } from '../../src/admin/client';
import type { GroupSnapshot } from '../../src/core/snapshots';
import { AppDir, ReleasesDir } from '../helpers/apps';
import type { AppKind } from '../helpers/apps';
import { underLoad } from '../helpers/deploy';
import { Holdfast, get, pidAlive, stopClean, waitFor } from '../helpers/holdfast';
import { runLoad } from '../helpers/load';

const RESIST = ['--rolling-restarts', '--resist-deployment-errors'];

/** Each case runs on a Node app and on a Rack app (config.ru through the Rack loader, smart-spawned). */
const KINDS: Array<{ kind: AppKind; name: string; bootMs: number }> = [
  { kind: 'node', name: 'Node app', bootMs: 15_000 },
  { kind: 'rack', name: 'Rack app', bootMs: 30_000 },
];

/** The group as the admin API shows it, read in-process so that it can be sampled every 100 ms. */
async function groupReader(hf: Holdfast): Promise<() => Promise<GroupSnapshot>> {
  const client = await connectAdmin({ name: hf.name, registryDir: hf.registryDir, access: 'read' });
  return async () => (await client.status()).groups[0]!;
}

/** Samples `fn` every 100 ms until `stop` resolves; returns the samples. */
async function sampleWhile<T>(fn: () => Promise<T>, stop: Promise<unknown>): Promise<T[]> {
  const samples: T[] = [];
  let done = false;
  void stop.finally(() => (done = true));
  while (!done) {
    samples.push(await fn());
    await new Promise((r) => setTimeout(r, 100));
  }
  return samples;
}

for (const { kind, name, bootMs } of KINDS) {
  test(`${name}, fixed pool of 3 under 16 connections: a good rolling restart never has fewer than 3 enabled processes, and a broken one keeps the same 3 pids`, async () => {
    const app = new AppDir('good', 'v1', kind);
    const hf = await Holdfast.start(app.dir, ['--min-instances', '3', '--max-pool-size', '3', ...RESIST]);
    try {
      await waitFor('three processes', () => hf.appPids.size >= 3, bootMs);
      const group = await groupReader(hf);
      const enabledCount = async () => (await group()).processes.filter((p) => p.state === 'enabled').length;
      const good = await underLoad(hf, 16, async () => {
        app.deploy('good', 'v2');
        const restart = hf.cli(['restart']);
        const samples = await sampleWhile(enabledCount, restart);
        return { r: await restart, samples };
      });
      assert.equal(good.value.r.code, 0, good.value.r.stderr);
      assert.ok(good.value.samples.length > 5, 'sampled during the restart');
      assert.ok(Math.min(...good.value.samples) >= 3, `enabled processes dipped to ${Math.min(...good.value.samples)}`);
      assert.equal(good.load.failed, 0, good.load.errors.join('\n'));
      assert.ok((await group()).processes.every((p) => p.generation === 2));

      const before = (await group()).processes.map((p) => p.pid).sort();
      const broken = await underLoad(hf, 16, async () => {
        app.deploy('syntax-error', 'v3');
        return hf.cli(['restart']);
      });
      assert.notEqual(broken.value.code, 0);
      assert.equal(broken.load.failed, 0, broken.load.errors.join('\n'));
      const g = await group();
      assert.ok(g.resisting_deployment_error, 'resisting');
      assert.deepEqual(g.processes.map((p) => p.pid).sort(), before, 'the same 3 processes serve');
      assert.ok(before.every(pidAlive));
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });

  test(`${name}, releases layout, fixed pool of 2: a release that dies 5 s after listening fails the restart within 90 s, the flag is set, and 2 processes of the previous release serve, stable`, async () => {
    const releases = new ReleasesDir('good', 'v1', kind);
    const first = releases.current;
    const hf = await Holdfast.start(first, ['--min-instances', '2', '--max-pool-size', '2', ...RESIST]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
      const group = await groupReader(hf);
      const oldRelease = (await group()).processes[0]!.release;
      const { value: r, load } = await underLoad(hf, 8, async () => {
        releases.deploy('crash-later', 'v2');
        const startedAt = Date.now();
        const result = await hf.cli(['restart']);
        return { result, tookMs: Date.now() - startedAt };
      });
      assert.notEqual(r.result.code, 0, 'restart exits non-zero');
      assert.ok(r.tookMs < 90_000, `restart took ${r.tookMs} ms`);
      assert.match(r.result.stdout + r.result.stderr, /HF_SPAWN_DIED|died|crashing/);
      assert.ok(load.ok > 50);
      // The remaining processes of the broken release die too and are replaced from the previous one.
      await waitFor(
        'two processes of the previous release',
        async () => {
          const g = await group();
          return g.processes.length === 2 && g.processes.every((p) => p.state === 'enabled' && p.release === oldRelease);
        },
        20_000,
        250,
      );
      const g = await group();
      assert.ok(g.resisting_deployment_error, 'the flag is set');
      assert.equal(g.resisting_deployment_error.rollback_release, oldRelease);
      const pids = g.processes.map((p) => p.pid).sort();
      await new Promise((res) => setTimeout(res, 10_000));
      const later = await group();
      assert.deepEqual(later.processes.map((p) => p.pid).sort(), pids, 'the pids are stable for 10 s');
      assert.ok(later.resisting_deployment_error, 'still resisting');
      for (let i = 0; i < 4; i++) assert.match((await get(hf.url('/'))).body, /version v1/);
      // resume restores capacity from the release that serves, never from the broken one
      assert.equal((await hf.cli(['resume'])).code, 0);
      await new Promise((res) => setTimeout(res, 1500));
      const resumed = await group();
      assert.equal(resumed.resisting_deployment_error, null);
      assert.ok(resumed.processes.every((p) => p.release === oldRelease));
    } finally {
      await stopClean(hf);
      releases.remove();
    }
  });

  test(`${name}: three poison GETs 1.5 s apart on the proxy path cost at most three processes, set no flag, and the pool is back to 2 within 10 s; other visitors see no failure`, async () => {
    const app = new AppDir('poison', 'v1', kind);
    // A fixed pool: Rack processes serve one request at a time, so the load alone would grow it.
    const hf = await Holdfast.start(app.dir, ['--min-instances', '2', '--max-pool-size', '2', ...RESIST, '--no-connection-handoff']);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
      const group = await groupReader(hf);
      // An app that has been serving: a death within probation_time of a version that has not served
      // yet is blamed on the version, and its request may go elsewhere (a Node app's hook says what
      // it had started; a Rack or WSGI process cannot, having died).
      await waitFor('the processes out of probation', async () => (await group()).processes.every((p) => !p.in_probation), 10_000, 200);
      const { load } = await underLoad(hf, 8, async () => {
        for (let i = 0; i < 3; i++) {
          const r = await get(hf.url('/poison')).catch((e: Error) => ({ status: 0, body: e.message }));
          assert.ok(r.status === 502 || r.status === 0, `a poison request fails (${r.status})`);
          await new Promise((res) => setTimeout(res, 1500));
        }
        await waitFor('the pool back to two', async () => (await group()).processes.filter((p) => p.state === 'enabled').length === 2, 10_000, 200);
      });
      const crashes = hf.lines.filter((l) => l.event === 'process_crashed');
      const deaths = hf.lines.filter((l) => l.event === 'process_crashed' || l.event === 'process_died');
      assert.ok(deaths.length <= 3, `${deaths.length} deaths`);
      assert.ok(crashes.length >= 1 && crashes.every((l) => JSON.stringify(l['requests']).includes('/poison')), 'each crash is logged with the poison request');
      const g = await group();
      assert.equal(g.resisting_deployment_error, null, 'no flag');
      assert.equal(hf.lines.filter((l) => l.event === 'spawn_error').length, 0, 'never counted as a spawn error');
      assert.equal(load.failed, 0, load.errors.join('\n'));
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });

  test(`${name}, with a health check path: a release that boots but answers 500 is resisted under load with 0 failed requests, and restart exits non-zero`, async () => {
    const app = new AppDir('good', 'v1', kind);
    const hf = await Holdfast.start(app.dir, ['--min-instances', '2', '--max-pool-size', '2', ...RESIST, '--health-check-path', '/health', '--health-check-timeout', '3']);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
      const before = (await hf.status()).groups[0]!.processes.map((p) => p.pid).sort();
      const { value: r, load } = await underLoad(hf, 8, async () => {
        app.deploy('answers-500', 'v2');
        return hf.cli(['restart']);
      });
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /health|HF_HEALTH_CHECK|500/);
      assert.equal(load.failed, 0, load.errors.join('\n'));
      const g = (await hf.status()).groups[0]!;
      assert.ok(g.resisting_deployment_error);
      assert.deepEqual(g.processes.map((p) => p.pid).sort(), before);
      assert.ok(hf.lines.some((l) => l.event === 'spawn_error' && l['code'] === 'HF_HEALTH_CHECK'));
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });

  test(`${name}: holdfast restart --timeout returns non-zero with the reason when the restart has not finished by then`, async () => {
    const app = new AppDir('good', 'v1', kind);
    const hf = await Holdfast.start(app.dir, [...RESIST]);
    try {
      app.deploy('hang', 'v2'); // never listens: only start_timeout (90 s) would end the restart
      const startedAt = Date.now();
      const r = await hf.cli(['restart', '--timeout', '2']);
      assert.equal(r.code, 1);
      assert.ok(Date.now() - startedAt < 15_000, 'returned at its timeout');
      assert.match(r.stderr, /did not finish within --timeout 2 s/);
      assert.match((await hf.cli(['restart', '--timeout', 'soon'])).stderr, /--timeout must be an integer from 1 to 86400 seconds \(got soon\)/);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });

  test(`${name}, hand-off path, steady CPU load for 15 s at pool_idle_time 3 s: no idle stop during the load, every process serves, and the pool shrinks back afterwards`, async () => {
    const app = new AppDir('busy', 'v1', kind); // ~5 ms of CPU per request
    const hf = await Holdfast.start(app.dir, ['--max-pool-size', '3', '--pool-idle-time', '3', '--probation-time', '1']);
    try {
      const loadEnds = Date.now() + 15_000;
      const load = await runLoad({ url: hf.url('/'), connections: 24, durationMs: 15_000 });
      assert.equal(load.failed, 0, load.errors.join('\n'));
      const idleStopsDuringLoad = hf.lines.filter((l) => l.event === 'process_draining' && l['reason'] === 'idle' && Number(new Date(String(l['time'])).getTime()) < loadEnds);
      const spawned = hf.lines.filter((l) => l.event === 'process_ready').map((l) => l.app_pid as number);
      assert.ok(spawned.length >= 2, 'the pool grew under load');
      assert.equal(idleStopsDuringLoad.length, 0, `idle stops during the load: ${idleStopsDuringLoad.length}`);
      const status = await hf.status();
      for (const p of status.groups[0]!.processes) assert.ok(p.processed > 0, `process ${p.pid} served (${p.processed})`);
      await waitFor('back to min_instances', async () => (await hf.status()).groups[0]!.processes.length === 1, 3000 + 8000, 250);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });
}
