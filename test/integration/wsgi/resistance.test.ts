// Rolling restarts and deployment error resistance on WSGI apps (issue 17), as resistance.test.ts
// does for Node apps: a load generator runs throughout, and no visitor may see a failed request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Variant } from '../../helpers/apps';
import { goodRollingDeploy, underLoad } from '../../helpers/deploy';
import { Holdfast, get, pidAlive, stopClean, waitFor } from '../../helpers/holdfast';
import { runLoad } from '../../helpers/load';
import { DjangoReleases, SYSTEM_PYTHON, WsgiAppDir, wsgiSource, type DjangoVariant } from '../../helpers/wsgi-apps';

const RESIST = ['--rolling-restarts', '--resist-deployment-errors', '--python', SYSTEM_PYTHON];
// One request at a time per process: under the tests' load a WSGI pool grows on demand (a Node
// pool does not). The good deploy keeps a fixed size, to compare N old with N new processes; the
// broken ones leave room above what 8 connections can ask for, so that each rolling step starts
// its new process before it stops an old one (at max_pool_size, holdfast stops one first).
const fixed = (n: number): string[] => ['--min-instances', String(n), '--max-pool-size', String(n)];
const ROOMY = ['--min-instances', '2', '--max-pool-size', '12'];

test('a good rolling deploy of 3 WSGI processes under 16 connections replaces every process with 0 failed requests', async () => {
  const app = new WsgiAppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, [...fixed(3), ...RESIST]);
  try {
    await waitFor('three processes', () => hf.appPids.size >= 3);
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
  test(`a broken WSGI deploy (${variant}) under load fails no request, keeps the old processes serving and enters resistance`, async () => {
    const app = new WsgiAppDir('good', 'v1');
    const hf = await Holdfast.start(app.dir, [...ROOMY, ...RESIST, ...extra]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2);
      const before = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
      const { value: r, load } = await underLoad(hf, 8, async () => {
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

test('a WSGI spawn failure on demand (broken code on disk, no restart, traffic spike) enters resistance with 0 failed requests', async () => {
  const app = new WsgiAppDir('good', 'v1');
  // v1 takes ~5 ms per request: with one request at a time per process, a spike asks for more processes.
  writeFileSync(join(app.dir, 'passenger_wsgi.py'), wsgiSource('good', 'v1').replace('    body =', '    import time\n    time.sleep(0.005)\n    body ='));
  const hf = await Holdfast.start(app.dir, ['--min-instances', '1', '--max-pool-size', '3', ...RESIST]);
  try {
    app.deploy('syntax-error', 'v2'); // on disk, no restart
    const load = await runLoad({ url: hf.url('/'), connections: 16, durationMs: 5000 });
    assert.equal(load.failed, 0, load.errors.join('\n'));
    const s = await waitFor('resistance', async () => {
      const st = await hf.status();
      return st.groups[0]!.resisting_deployment_error ? st : false;
    }, 15_000, 300);
    assert.match(s.groups[0]!.resisting_deployment_error!.error.output_tail.join('\n'), /SyntaxError/);
    assert.equal(s.groups[0]!.processes.length, 1, 'the running process keeps serving alone');
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('while resisting, a traffic spike on a WSGI app spawns nothing, idle processes stay, and resume clears the flag', async () => {
  const app = new WsgiAppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--min-instances', '2', '--max-pool-size', '4', '--pool-idle-time', '1', ...RESIST]);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    app.deploy('syntax-error', 'v2');
    assert.notEqual((await hf.cli(['restart'])).code, 0);
    const spawnsBefore = hf.lines.filter((l) => /spawning an app process|ready \(generation/.test(l.msg)).length;
    // 16 connections on 2 processes that take one request each: without the flag this would spawn.
    const load = await runLoad({ url: hf.url('/'), connections: 16, durationMs: 3000 });
    assert.equal(load.failed, 0, load.errors.join('\n'));
    await new Promise((r) => setTimeout(r, 2500)); // idle past pool_idle_time
    const s = await hf.status();
    assert.equal(s.groups[0]!.processes.length, 2, 'nothing spawned, nothing idle-cleaned');
    assert.equal(hf.lines.filter((l) => /spawning an app process|ready \(generation/.test(l.msg)).length, spawnsBefore);
    assert.equal((await hf.cli(['resume'])).code, 0);
    assert.equal((await hf.status()).groups[0]!.resisting_deployment_error, null);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('without resistance and without rolling restarts, a broken WSGI deploy gives visitors the error page', async () => {
  const app = new WsgiAppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--python', SYSTEM_PYTHON]);
  try {
    app.deploy('exit-at-start', 'v2');
    assert.notEqual((await hf.cli(['restart'])).code, 0);
    const r = await get(hf.url('/'));
    assert.equal(r.status, 503);
    assert.equal((await hf.status()).groups[0]!.resisting_deployment_error, null);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

const DJANGO_BROKEN: Array<[DjangoVariant, RegExp]> = [
  ['view-syntax-error', /SyntaxError/],
  ['bad-database-engine', /'django\.db\.backends\.postgresqll' isn't an available database backend/],
  ['missing-dependency', /No module named 'rest_framework_not_installed'/],
];

for (const [variant, evidence] of DJANGO_BROKEN) {
  test(`Django in the releases layout: a broken release (${variant}) is resisted under load with 0 failed requests, and a fixed one then rolls out`, async () => {
    const rel = new DjangoReleases('good', 'v1');
    const hf = await Holdfast.start(rel.current, [...ROOMY, ...RESIST]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2);
      const { value: r, load } = await underLoad(hf, 8, async () => {
        rel.deploy(variant, 'v2');
        return hf.cli(['restart']);
      });
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, evidence);
      assert.equal(load.failed, 0, load.errors.join('\n'));
      assert.ok(load.ok > 50);
      const g = (await hf.status()).groups[0]!;
      assert.ok(g.resisting_deployment_error, 'resisting');
      assert.match(g.resisting_deployment_error!.error.output_tail.join('\n'), evidence);

      if (variant === 'view-syntax-error') {
        // While resisting, an old process that dies is replaced from the old release, not the broken one.
        const victim = g.processes[0]!.pid;
        const count = g.processes.length;
        process.kill(victim, 'SIGKILL');
        const ps = await waitFor('the replacement', async () => {
          const now = (await hf.status()).groups[0]!.processes;
          return now.length === count && !now.some((p) => p.pid === victim) && now.every((p) => p.state === 'enabled') && now;
        }, 20_000, 250);
        const fresh = ps.filter((p) => !g.processes.some((old) => old.pid === p.pid));
        assert.equal(fresh.length, 1);
        assert.match((fresh[0] as unknown as { release: string }).release, /releases\/1$/);
        for (let i = 0; i < 4; i++) assert.match((await get(hf.url('/'))).body, /version v1/);
      }

      const repaired = await underLoad(hf, 8, async () => {
        rel.deploy('good', 'v3');
        return hf.cli(['restart']);
      });
      assert.equal(repaired.value.code, 0, repaired.value.stdout + repaired.value.stderr);
      assert.equal(repaired.load.failed, 0, repaired.load.errors.join('\n'));
      assert.equal((await hf.status()).groups[0]!.resisting_deployment_error, null);
      assert.match((await get(hf.url('/'))).body, /version v3/);
    } finally {
      await stopClean(hf);
      rel.remove();
    }
  });
}
