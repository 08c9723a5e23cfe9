// Rolling restarts and deployment error resistance (issue 5), with a load generator running
// throughout, on a Node app, a Rack app (a config.ru served through the Rack loader, smart-spawned)
// and a WSGI app (passenger_wsgi.py through the WSGI loader): every case holds for each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppDir, ReleasesDir } from '../helpers/apps';
import type { AppKind, Variant } from '../helpers/apps';
import { Holdfast, get, pidAlive, waitFor, stopClean } from '../helpers/holdfast';
import { runLoad } from '../helpers/load';
import { SYSTEM_PYTHON } from '../helpers/wsgi-apps';
import { goodRollingDeploy, underLoad } from '../helpers/deploy';

const RESIST = ['--rolling-restarts', '--resist-deployment-errors'];

interface Kind {
  kind: AppKind;
  /** "a Node app", "a Rack app": how the test names say it. */
  name: string;
  entry: string;
  /** How long the first processes may take to boot (Ruby boots slower than Node). */
  bootMs: number;
  /**
   * Connections for the broken-deploy loads. Rack and WSGI processes serve one request at a time,
   * so load grows the pool on demand; 4 connections keep it below max_pool_size.
   */
  connections: number;
  /** What every start of this kind adds (the interpreter). */
  args: string[];
}

const KINDS: Kind[] = [
  { kind: 'node', name: 'a Node app', entry: 'app.js', bootMs: 15_000, connections: 8, args: [] },
  { kind: 'rack', name: 'a Rack app', entry: 'config.ru', bootMs: 30_000, connections: 4, args: [] },
  // Debian's python has what the loader needs; the first python3 on PATH may not.
  { kind: 'wsgi', name: 'a WSGI app', entry: 'passenger_wsgi.py', bootMs: 15_000, connections: 4, args: ['--python', SYSTEM_PYTHON] },
];

const BROKEN: Array<[Variant, string[], RegExp]> = [
  ['syntax-error', [], /SyntaxError/],
  ['exit-at-start', [], /cannot connect to the database/],
  ['hang', ['--start-timeout', '3'], /within 3 s|did not (become ready|accept)/],
  ['crash-after-ready', ['--probation-time', '3'], /crashing after boot|code 3/],
];

for (const { kind, name, entry, bootMs, connections, args } of KINDS) {
  test(`a good rolling deploy of ${name} (3 processes, 16 connections) replaces every process with 0 failed requests`, async () => {
    const app = new AppDir('good', 'v1', kind);
    // max_pool_size 3: a Rack process serves one request at a time, so 16 connections would grow the pool.
    const hf = await Holdfast.start(app.dir, [...args, '--min-instances', '3', '--max-pool-size', '3', ...RESIST]);
    try {
      await waitFor('three processes', () => hf.appPids.size >= 3, bootMs);
      const load = await goodRollingDeploy(hf, app, 'v2');
      assert.ok(load.requests > 200, `only ${load.requests} requests`);
      assert.ok([...load.bodies.keys()].some((b) => b.includes('v1')) && [...load.bodies.keys()].some((b) => b.includes('v2')));
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });

  for (const [variant, extra, evidence] of BROKEN) {
    test(`a broken deploy (${variant}) of ${name} under load fails no request, keeps the old processes serving and enters resistance`, async () => {
      const app = new AppDir('good', 'v1', kind);
      const hf = await Holdfast.start(app.dir, [...args, '--min-instances', '2', ...RESIST, ...extra]);
      try {
        await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
        let before: number[] = [];
        const { value: r, load } = await underLoad(hf, connections, async () => {
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

  test(`while resisting, a traffic spike on ${name} spawns nothing and processes idle past pool_idle_time stay`, async () => {
    const app = new AppDir('good', 'v1', kind);
    const hf = await Holdfast.start(app.dir, [...args, '--min-instances', '2', '--max-pool-size', '4', '--pool-idle-time', '1', ...RESIST]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
      app.deploy('syntax-error', 'v2');
      assert.notEqual((await hf.cli(['restart'])).code, 0);
      const spawnsBefore = hf.lines.filter((l) => l.event === 'spawn_started' || l.event === 'process_ready').length;
      const load = await runLoad({ url: hf.url('/'), connections: 32, durationMs: 4000 });
      assert.equal(load.failed, 0, load.errors.join('\n'));
      await new Promise((r) => setTimeout(r, 2500)); // idle past pool_idle_time
      const s = await hf.status();
      assert.equal(s.groups[0]!.processes.length, 2, 'nothing spawned, nothing idle-cleaned');
      assert.equal(hf.lines.filter((l) => l.event === 'spawn_started' || l.event === 'process_ready').length, spawnsBefore);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });

  test(`while resisting, a process of ${name} past memory_limit is still stopped and not replaced`, async () => {
    // v1 keeps 200 MB on /grow (Ruby starts at ~15 MB, Node at ~45); v2 is broken.
    const app = new AppDir('leaky', 'v1', kind);
    const hf = await Holdfast.start(app.dir, [...args, '--min-instances', '2', '--memory-limit', '150', ...RESIST]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
      app.deploy('syntax-error', 'v2');
      assert.notEqual((await hf.cli(['restart'])).code, 0);
      await get(hf.url('/grow')); // one process only, by far over the limit
      const stopped = await hf.waitForLog('a memory_limit stop', (l) => l.reason === 'memory_limit' && l.event === 'process_stopped', 15_000);
      await new Promise((r) => setTimeout(r, 3000));
      const s = await hf.status();
      assert.equal(s.groups[0]!.processes.length, 1, 'not replaced while resisting');
      assert.ok(!s.groups[0]!.processes.some((p) => p.pid === stopped.app_pid));
      assert.ok(s.groups[0]!.resisting_deployment_error);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });

  // A smart-spawned Rack process is forked from the preloader that loaded its generation's code, so
  // broken code on disk only shows when a process boots from scratch: spawn_method "direct".
  const direct = kind === 'rack' ? ['--spawn-method', 'direct'] : [];
  test(`a spawn failure of ${name} on demand (broken code on disk, no restart, traffic spike) enters resistance with 0 failed requests`, async () => {
    // v1 burns ~5 ms of CPU per request, so a spike keeps its process busy and asks for more.
    const app = new AppDir('busy', 'v1', kind);
    const hf = await Holdfast.start(app.dir, [...args, '--min-instances', '1', '--max-pool-size', '3', ...direct, ...RESIST]);
    try {
      app.deploy('syntax-error', 'v2'); // on disk, no restart
      const load = await runLoad({ url: hf.url('/'), connections: 32, durationMs: 6000 });
      assert.equal(load.failed, 0, load.errors.join('\n'));
      const s = await waitFor('resistance', async () => {
        const st = await hf.status();
        return st.groups[0]!.resisting_deployment_error ? st : false;
      }, 15_000, 300);
      assert.match(s.groups[0]!.resisting_deployment_error!.error.output_tail.join('\n'), /SyntaxError|syntax error/);
      assert.equal(s.groups[0]!.processes.length, 1, 'the running process keeps serving alone');
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });

  test(`a fixed deploy of ${name} and restart clears the flag and the new version serves; resume clears it without a restart`, async () => {
    const app = new AppDir('good', 'v1', kind);
    const hf = await Holdfast.start(app.dir, [...args, '--min-instances', '2', ...RESIST]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
      app.deploy('exit-at-start', 'v2');
      assert.notEqual((await hf.cli(['restart'])).code, 0);
      assert.ok((await hf.status()).groups[0]!.resisting_deployment_error);
      app.deploy('good', 'v3');
      const fixed = await hf.cli(['restart']);
      assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
      assert.equal((await hf.status()).groups[0]!.resisting_deployment_error, null);
      assert.match((await get(hf.url('/'))).body, /version v3/);
      await hf.waitForLog('the flag cleared in the log', (l) => l.resisting_deployment_error === false);
      // Enter again, then resume.
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

  test(`Capistrano layout, ${name}: while resisting a broken release, kill -9 of an old process is replaced from the old release and answers with the old version`, async () => {
    const rel = new ReleasesDir('good', 'v1', kind);
    const hf = await Holdfast.start(rel.current, [...args, '--min-instances', '2', ...RESIST]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, bootMs);
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
      const fresh = s.groups[0]!.processes.find((p) => p.pid !== victim && !hf.lines.some((l) => l.app_pid === p.pid && l.cause === 'start'))!;
      assert.match(fresh.release ?? '', /releases\/1$/);
      for (let i = 0; i < 6; i++) assert.match((await get(hf.url('/'))).body, /version v1/);
      assert.ok(readFileSync(join(rel.root, 'releases/2', entry), 'utf8').includes('broken'));
    } finally {
      await stopClean(hf);
      rel.remove();
    }
  });

  test(`without resistance and without rolling restarts, a broken deploy of ${name} gives visitors the error page`, async () => {
    const app = new AppDir('good', 'v1', kind);
    const hf = await Holdfast.start(app.dir, args);
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
}

test('a generic app deploy that listens on the wrong port is resisted with 0 failed requests', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--app-start-command', 'exec node app.js', '--min-instances', '2', '--start-timeout', '3', ...RESIST]);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    const { value: r, load } = await underLoad(hf, 8, async () => {
      app.deploy('wrong-port', 'v2');
      return hf.cli(['restart']);
    });
    assert.notEqual(r.code, 0);
    assert.equal(load.failed, 0, load.errors.join('\n'));
    assert.ok((await hf.status()).groups[0]!.resisting_deployment_error);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});
