// ChildSpawner with real processes: the fixture apps, started the way holdfast starts them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpawnError } from '../../../src/errors';
import type { ProcessHandle } from '../../../src/core/process-handle';
import { SpawnerFixture, get, isGone, waitUntil } from '../../helpers/spawn-helpers';
import { fixtureApp } from '../../helpers/paths';

const TEST_TIMEOUT = { timeout: 60_000 };

/** Runs fn with a fresh fixture; afterwards no app process, watchdog or socket file may be left. */
async function withSpawner(fn: (fx: SpawnerFixture) => Promise<void>): Promise<void> {
  const fx = new SpawnerFixture();
  try {
    await fn(fx);
  } finally {
    const left = await fx.cleanup();
    assert.deepEqual(left, { pids: [], sockets: [] }, 'nothing is left behind');
  }
}

async function spawnError(promise: Promise<unknown>): Promise<SpawnError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof SpawnError, `expected a SpawnError, got ${String(e)}`);
    return e;
  }
  assert.fail('the spawn succeeded');
}

function pidsOf(fx: SpawnerFixture): number[] {
  return [...fx.pids];
}

test('spawns a Node app that answers over a Unix socket, then terminates it', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const handle = await fx.spawn(fx.spawner({ app: 'hello', envvars: { VERSION: 'v7' } }));
    assert.equal(handle.target.kind, 'unix');
    assert.ok(handle.target.kind === 'unix' && Buffer.byteLength(handle.target.socketPath) < 100);
    assert.equal(handle.release, realpathSync(fixtureApp('hello')));
    assert.deepEqual(await get(handle.target, '/'), { status: 200, body: `hello v7 pid ${handle.pid}` });
    assert.equal((await get(handle.target, '/pid')).body, String(handle.pid));
    // the app's own listen callback still ran
    await fx.waitForOutput(/hello v7 listening/);
    const exit = await handle.terminate(5000);
    assert.deepEqual(exit, { code: null, signal: 'SIGTERM' });
    assert.deepEqual(await handle.exited, exit);
    assert.ok(isGone(handle.pid));
    assert.deepEqual(readdirSync(fx.socketDir), [], 'the socket file is removed');
  });
});

test('spawns an ES module app that listened with a port, a host and a callback', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const handle = await fx.spawn(fx.spawner({ app: 'esm-app' }));
    assert.equal((await get(handle.target)).body, `hello esm pid ${handle.pid}`);
    await fx.waitForOutput(/esm-app: listening/);
  });
});

test('reports event-loop utilization from the hook of a Node app', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const handle = await fx.spawn(fx.spawner({ app: 'hello' }));
    const elu = handle.eventLoopUtilization();
    assert.ok(typeof elu === 'number' && elu >= 0 && elu <= 1);
  });
});

test('moves only the first listen() of an app, whatever its form, and leaves later ones alone', TEST_TIMEOUT, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-app-'));
  writeFileSync(
    join(dir, 'app.js'),
    `const http = require('node:http');
     const second = http.createServer((q, s) => s.end('second'));
     const first = http.createServer((q, s) => s.end('first ' + second.address().port));
     first.listen({ port: 8080, host: '127.0.0.1' }, () => {
       console.log('first listening on ' + JSON.stringify(first.address()));
       second.listen(0, '127.0.0.1');
     });`,
  );
  try {
    await withSpawner(async (fx) => {
      const handle = await fx.spawn(fx.spawner({ appDir: dir }));
      await fx.waitForOutput(/first listening/);
      const answer = await get(handle.target);
      const port = Number(/^first (\d+)$/.exec(answer.body)?.[1]);
      assert.ok(port > 0, answer.body);
      assert.equal((await get({ kind: 'tcp', host: '127.0.0.1', port })).body, 'second');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the hook never keeps an app alive: an app that closes its server exits by itself', TEST_TIMEOUT, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-app-'));
  writeFileSync(
    join(dir, 'app.js'),
    `const server = require('node:http').createServer((q, s) => { s.setHeader('connection', 'close'); s.end('bye', () => server.close()); });
     server.listen(3000);`,
  );
  try {
    await withSpawner(async (fx) => {
      const handle = await fx.spawn(fx.spawner({ appDir: dir }));
      assert.equal((await get(handle.target)).body, 'bye');
      const exit = await Promise.race([handle.exited, new Promise((r) => setTimeout(() => r('still running'), 5000))]);
      assert.deepEqual(exit, { code: 0, signal: null });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spawns a generic app with its start command and reaches it over TCP on $PORT', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const spawner = fx.spawner({
      app: 'generic',
      environment: 'staging',
      envvars: { VERSION: 'v3', PORT: '1' },
      appStartCommand: 'echo "env NODE_ENV=$NODE_ENV RACK_ENV=$RACK_ENV PORT=$PORT"; exec python3 server.py',
    });
    const handle = await fx.spawn(spawner);
    assert.equal(handle.target.kind, 'tcp');
    assert.ok(handle.target.kind === 'tcp' && handle.target.host === '127.0.0.1' && handle.target.port > 1024);
    assert.equal((await get(handle.target)).body, `generic v3 pid ${handle.pid}`);
    assert.equal(handle.eventLoopUtilization(), undefined);
    const port = handle.target.kind === 'tcp' ? handle.target.port : 0;
    await fx.waitForOutput(new RegExp(`^env NODE_ENV=staging RACK_ENV=staging PORT=${port}$`));
  });
});

test('lets envvars set NODE_ENV over the environment', TEST_TIMEOUT, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-app-'));
  writeFileSync(join(dir, 'app.js'), `console.log('NODE_ENV=' + process.env.NODE_ENV); require('node:http').createServer().listen(3000);`);
  try {
    await withSpawner(async (fx) => {
      await fx.spawn(fx.spawner({ appDir: dir, environment: 'production', envvars: { NODE_ENV: 'development' } }));
      await fx.waitForOutput(/^NODE_ENV=development$/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('waits for an app that starts slowly within start_timeout', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const started = Date.now();
    const handle = await fx.spawn(fx.spawner({ app: 'slow-start', envvars: { SLOW_START_MS: '1500' }, startTimeoutMs: 15_000 }));
    assert.ok(Date.now() - started >= 1500);
    assert.equal((await get(handle.target)).body, `slow-start pid ${handle.pid}`);
  });
});

test('gives up on an app that does not listen within start_timeout and kills it', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const started = Date.now();
    const error = await spawnError(fx.spawn(fx.spawner({ app: 'slow-start', envvars: { SLOW_START_MS: '30000' }, startTimeoutMs: 1500 })));
    assert.ok(Date.now() - started < 10_000);
    assert.equal(error.code, 'HF_SPAWN_TIMEOUT');
    assert.equal(error.details.category, 'timeout');
    assert.match(error.message, /did not listen within 1\.5 s/);
    assert.ok(error.details.outputTail.includes('slow-start: listening in 30000 ms'));
    const [pid] = pidsOf(fx);
    assert.ok(pid !== undefined && isGone(pid), 'the process is gone when the error arrives');
  });
});

test('gives up on a generic app that never accepts connections within start_timeout', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const error = await spawnError(fx.spawn(fx.spawner({ app: 'generic', appStartCommand: 'echo booting; exec sleep 30', startTimeoutMs: 1000 })));
    assert.equal(error.details.category, 'timeout');
    assert.match(error.message, /did not accept connections on port \d+ within 1 s/);
    assert.deepEqual(error.details.outputTail, ['booting']);
    assert.ok(pidsOf(fx).every(isGone));
  });
});

test('reports an app that exits at boot with its exit code and its output', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const error = await spawnError(fx.spawn(fx.spawner({ app: 'crash-on-boot' }), { generation: 4 }));
    assert.equal(error.code, 'HF_SPAWN_EXITED');
    assert.equal(error.message, 'app process exited with code 1 before it was ready');
    const d = error.details;
    assert.equal(d.category, 'exited');
    assert.equal(d.exitCode, 1);
    assert.equal(d.signal, null);
    assert.ok(d.outputTail.includes('crash-on-boot: starting up'));
    assert.ok(d.outputTail.includes('crash-on-boot: cannot reach the database (DATABASE_URL is not set), giving up'));
    assert.match(d.errorId, /^[0-9a-f]{8}$/);
    assert.equal(d.command, `node ${join(realpathSync(fixtureApp('crash-on-boot')), 'app.js')}`);
    assert.equal(d.release, realpathSync(fixtureApp('crash-on-boot')));
    assert.equal(d.generation, 4);
    assert.ok(Math.abs(d.at - Date.now()) < 10_000);
  });
});

test('keeps the SyntaxError of an app that does not compile in the output tail', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const error = await spawnError(fx.spawn(fx.spawner({ app: 'syntax-error' })));
    assert.equal(error.details.category, 'exited');
    assert.ok(error.details.outputTail.some((l) => /^SyntaxError: /.test(l)), error.details.outputTail.join('\n'));
  });
});

test('reports a start command that does not exist as an OS error with exit code 127', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const error = await spawnError(fx.spawn(fx.spawner({ app: 'generic', appStartCommand: 'holdfast-no-such-command --port $PORT' })));
    assert.equal(error.code, 'HF_SPAWN_OS');
    assert.equal(error.details.category, 'os');
    assert.equal(error.details.exitCode, 127);
    assert.match(error.message, /not found \(exit code 127\)/);
    assert.ok(error.details.outputTail.some((l) => /holdfast-no-such-command: not found/.test(l)));
    assert.equal(error.details.command, 'holdfast-no-such-command --port $PORT');
  });
});

test('reports a release dir that does not exist as an OS error without starting anything', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const error = await spawnError(fx.spawn(fx.spawner({ app: 'hello' }), { release: '/nonexistent/holdfast/release' }));
    assert.equal(error.details.category, 'os');
    assert.match(error.message, /\/nonexistent\/holdfast\/release cannot be used \(ENOENT\)/);
    assert.equal(fx.pids.size, 0);
  });
});

test('reports a release without a Node entry as an OS error naming what it looked for', TEST_TIMEOUT, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-app-'));
  try {
    await withSpawner(async (fx) => {
      const error = await spawnError(fx.spawn(fx.spawner({ appDir: dir })));
      assert.equal(error.details.category, 'os');
      assert.match(error.message, /no Node app entry in .*: looked for app\.js, index\.js, server\.js/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('says memory may have run out when a process is SIGKILLed while starting', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const spawning = spawnError(fx.spawn(fx.spawner({ app: 'slow-start', envvars: { SLOW_START_MS: '30000' } })));
    const { pid } = await fx.waitForOutput(/slow-start: listening in/);
    process.kill(pid, 'SIGKILL');
    const error = await spawning;
    assert.equal(error.details.category, 'exited');
    assert.equal(error.details.signal, 'SIGKILL');
    assert.equal(error.details.exitCode, null);
    assert.match(error.message, /SIGKILL.*memory may have run out/);
  });
});

test('stops an app that ignores SIGTERM with SIGKILL after the grace period', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const handle = await fx.spawn(fx.spawner({ app: 'ignores-sigterm' }));
    const started = Date.now();
    const exit = await handle.terminate(700);
    assert.ok(Date.now() - started >= 650, 'it waited for the grace period');
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
    await fx.waitForOutput(/got SIGTERM, ignoring it/);
    assert.deepEqual(await handle.terminate(700), exit, 'terminate is idempotent');
  });
});

test('a shorter grace given later cuts the wait short', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const handle = await fx.spawn(fx.spawner({ app: 'ignores-sigterm' }));
    const started = Date.now();
    const slow = handle.terminate(60_000);
    await fx.waitForOutput(/got SIGTERM/);
    const fast = handle.terminate(0);
    assert.deepEqual(await fast, { code: null, signal: 'SIGKILL' });
    assert.deepEqual(await slow, await fast);
    assert.ok(Date.now() - started < 10_000);
  });
});

test('terminating a process also kills what it forked into its group', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const spawner = fx.spawner({ app: 'generic', appStartCommand: 'sleep 1000 & echo "forked $!"; exec python3 server.py' });
    const handle = await fx.spawn(spawner);
    const forked = Number(/^forked (\d+)$/.exec((await fx.waitForOutput(/^forked \d+$/)).line)![1]);
    fx.pids.add(forked);
    assert.ok(!isGone(forked));
    await handle.terminate(5000);
    assert.ok(await waitUntil(() => isGone(forked), 2000), 'the forked sleep is gone');
  });
});

test('after the leader exits, what it forked gets the rest of the grace period to finish', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const member = `process.on('SIGTERM', () => setTimeout(() => { console.log('member finished cleanly'); process.exit(0); }, 400));
      setInterval(() => {}, 1000); console.log('member up');`;
    const spawner = fx.spawner({ app: 'generic', appStartCommand: `node -e "${member}" & exec python3 server.py` });
    const handle = await fx.spawn(spawner);
    const { line } = await fx.waitForOutput(/^member up$/);
    assert.equal(line, 'member up');
    const started = Date.now();
    const exit = await handle.terminate(10_000);
    assert.deepEqual(exit, { code: null, signal: 'SIGTERM' }, 'python itself went at once');
    assert.ok(Date.now() - started >= 350, 'terminate waited for the member');
    await fx.waitForOutput(/^member finished cleanly$/, 2000);
  });
});

test('when an app process dies on its own, what it forked goes too', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const spawner = fx.spawner({ app: 'generic', appStartCommand: 'sleep 1000 & echo "forked $!"; exec python3 server.py' });
    const handle = await fx.spawn(spawner);
    const forked = Number(/^forked (\d+)$/.exec((await fx.waitForOutput(/^forked \d+$/)).line)![1]);
    fx.pids.add(forked);
    process.kill(handle.pid, 'SIGKILL');
    assert.deepEqual(await handle.exited, { code: null, signal: 'SIGKILL' });
    assert.ok(await waitUntil(() => isGone(forked), 2000), 'the forked sleep is gone');
  });
});

test('aborting a spawn kills the process and rejects with an AbortError', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const controller = new AbortController();
    const spawning = fx.spawn(fx.spawner({ app: 'slow-start', envvars: { SLOW_START_MS: '30000' } }), { signal: controller.signal });
    const { pid } = await fx.waitForOutput(/slow-start: listening in/);
    controller.abort();
    await assert.rejects(spawning, (e: Error) => e.name === 'AbortError');
    assert.ok(isGone(pid), 'the process is gone when the abort is reported');
  });
});

test('an already aborted signal starts nothing', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    await assert.rejects(fx.spawn(fx.spawner({ app: 'hello' }), { signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(fx.pids.size, 0);
  });
});

test('resolves a symlinked app dir to its release at each spawn and reports the release and commit', TEST_TIMEOUT, async () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'hf-deploy-')));
  const commit = 'c0ffee'.padEnd(40, '0');
  const releases = join(root, 'releases');
  mkdirSync(releases);
  cpSync(fixtureApp('hello'), join(releases, 'r1'), { recursive: true });
  cpSync(fixtureApp('hello'), join(releases, 'r2'), { recursive: true });
  mkdirSync(join(releases, 'r2/.git/refs/heads'), { recursive: true });
  writeFileSync(join(releases, 'r2/.git/HEAD'), 'ref: refs/heads/main\n');
  writeFileSync(join(releases, 'r2/.git/refs/heads/main'), `${commit}\n`);
  const current = join(root, 'current');
  symlinkSync(join(releases, 'r1'), current);
  try {
    await withSpawner(async (fx) => {
      const spawner = fx.spawner({ appDir: current });
      const first: ProcessHandle = await fx.spawn(spawner);
      assert.equal(first.release, join(releases, 'r1'));
      assert.equal(first.commit, undefined);
      // a deploy switches the symlink atomically, as Capistrano does
      symlinkSync(join(releases, 'r2'), join(root, 'current.tmp'));
      renameSync(join(root, 'current.tmp'), current);
      const second = await fx.spawn(spawner, { generation: 2 });
      assert.equal(second.release, join(releases, 'r2'));
      assert.equal(second.commit, commit);
      // while resisting, the old release can still be spawned by name
      const third = await fx.spawn(spawner, { release: join(releases, 'r1') });
      assert.equal(third.release, join(releases, 'r1'));
      assert.equal((await get(third.target)).body, `hello v1 pid ${third.pid}`);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('samples the memory and CPU of a running process from the OS', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    const handle = await fx.spawn(fx.spawner({ app: 'memory-hog' }));
    const before = await handle.sampleUsage();
    assert.ok(before.rssBytes > 10 * 1024 * 1024, `rss ${before.rssBytes}`);
    assert.ok(before.cpuPercent >= 0);
    await get(handle.target, '/grow');
    await get(handle.target, '/grow');
    const after = await handle.sampleUsage();
    assert.ok(after.rssBytes - before.rssBytes >= 30 * 1024 * 1024, `grew by ${after.rssBytes - before.rssBytes}`);
    await handle.terminate(5000);
    assert.deepEqual(await handle.sampleUsage(), { rssBytes: 0, cpuPercent: 0 });
  });
});

test('forwards every output line with the pid and the stream it came from', TEST_TIMEOUT, async () => {
  await withSpawner(async (fx) => {
    await spawnError(fx.spawn(fx.spawner({ app: 'crash-on-boot' })));
    const [pid] = pidsOf(fx);
    assert.deepEqual(
      fx.output.map((o) => [o.stream, o.line, o.pid]).sort(),
      [
        ['stdout', 'crash-on-boot: starting up', pid],
        ['stderr', 'crash-on-boot: cannot reach the database (DATABASE_URL is not set), giving up', pid],
      ].sort(),
    );
  });
});

/** A Rack app dir whose config.ru never finishes loading: its preloader hangs in boot. */
function hangingRackApp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hf-rack-hang-'));
  writeFileSync(join(dir, 'config.ru'), "puts 'preloader waiting for something that never comes'\n$stdout.flush\nsleep\n");
  return dir;
}

test('closing the spawner kills a Rack preloader that is still booting instead of waiting out start_timeout', TEST_TIMEOUT, async () => {
  const dir = hangingRackApp();
  try {
    await withSpawner(async (fx) => {
      const spawner = fx.spawner({ appDir: dir, appType: 'rack', startTimeoutMs: 90_000 });
      const outcome = fx.spawn(spawner).then(() => 'spawned', (e: Error) => e.name);
      const { pid } = await fx.waitForOutput(/preloader waiting/);
      const startedAt = Date.now();
      await spawner.close();
      assert.ok(Date.now() - startedAt < 10_000, `close took ${Date.now() - startedAt} ms`);
      assert.ok(isGone(pid), 'the booting preloader is gone');
      assert.equal(await outcome, 'AbortError');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Rack preloader boot that no spawn waits for any more is stopped', TEST_TIMEOUT, async () => {
  const dir = hangingRackApp();
  try {
    await withSpawner(async (fx) => {
      const spawner = fx.spawner({ appDir: dir, appType: 'rack', startTimeoutMs: 90_000 });
      const controller = new AbortController();
      const spawning = fx.spawn(spawner, { signal: controller.signal });
      const { pid } = await fx.waitForOutput(/preloader waiting/);
      controller.abort();
      await assert.rejects(spawning, { name: 'AbortError' });
      assert.ok(await waitUntil(() => isGone(pid), 5000), 'the preloader nobody waits for is gone');
      await spawner.close();
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
