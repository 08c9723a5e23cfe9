// `holdfast start --daemonize --pid-file F`, as Passenger's: returns 0 once the app serves, 1 with the
// spawn error for a broken app (nothing left running); `holdfast stop` ends it; the log goes to a file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppDir } from '../../helpers/apps';
import { get, pidAlive, runCli, waitFor } from '../../helpers/holdfast';
import { CLI } from '../../helpers/paths';

function logLines(file: string): Array<Record<string, unknown>> {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function appPids(file: string): number[] {
  return logLines(file)
    .filter((l) => l['event'] === 'process_ready' || typeof l['app_pid'] === 'number')
    .map((l) => l['app_pid'] as number);
}

test('start --daemonize returns once the app serves, writes the pid file and logs to the app dir; stop ends it all', { timeout: 90_000 }, async () => {
  const app = new AppDir('good', 'v1');
  const work = mkdtempSync(join(tmpdir(), 'hf-daemon-'));
  const env = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: join(work, 'registry') };
  const pidFile = join(work, 'holdfast.pid');
  let pid: number | undefined;
  try {
    const r = await runCli(['start', app.dir, '--port', '0', '--address', '127.0.0.1', '--name', 'daemon', '--daemonize', '--pid-file', pidFile], env);
    assert.equal(r.code, 0, r.stderr);
    const m = /serving on http:\/\/127\.0\.0\.1:(\d+) in the background \(pid (\d+)\); log: (\S+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    pid = Number(m[2]);
    const logFile = m[3]!;
    assert.equal(logFile, join(app.dir, 'log', 'holdfast.log'), "Passenger's default: a log in the app dir");
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(pid));
    assert.ok(pidAlive(pid));
    // It serves the moment the command returns.
    const reply = await get(`http://127.0.0.1:${m[1]}/`);
    assert.equal(reply.status, 200);
    assert.match(reply.body, /version v1/);
    const lines = logLines(logFile);
    assert.ok(lines.some((l) => l['event'] === 'serving' && l['pid'] === pid));
    const pids = appPids(logFile);
    assert.ok(pids.length > 0);

    const stop = await runCli(['stop', '--name', 'daemon'], env);
    assert.equal(stop.code, 0, stop.stderr);
    assert.ok(!pidAlive(pid), 'holdfast is gone once stop returns');
    pid = undefined;
    await waitFor('the app processes to go', () => pids.every((p) => !pidAlive(p)), 10_000);
    assert.ok(!existsSync(pidFile), 'the pid file is removed');
    assert.ok(logLines(logFile).some((l) => l['event'] === 'stopped'));
  } finally {
    if (pid !== undefined && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    app.remove();
    rmSync(work, { recursive: true, force: true });
  }
});

test('start --daemonize exits 1 with the spawn error for a broken app, and leaves nothing running', { timeout: 90_000 }, async () => {
  const app = new AppDir('exit-at-start', 'v1');
  const work = mkdtempSync(join(tmpdir(), 'hf-daemon-'));
  const registry = join(work, 'registry');
  const env = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry };
  const logFile = join(work, 'broken.log');
  const pidFile = join(work, 'holdfast.pid');
  try {
    const r = await runCli(['start', app.dir, '--port', '0', '--address', '127.0.0.1', '--name', 'broken', '-d', '--pid-file', pidFile, '--log-file', logFile], env);
    assert.equal(r.code, 1, r.stdout);
    const lines = r.stderr.split('\n');
    assert.match(lines[0]!, /^holdfast: the app could not start: app process exited with code 1 before it was ready$/);
    assert.match(r.stderr, /\(HF_SPAWN_EXITED\)/);
    assert.match(r.stderr, /FATAL: cannot connect to the database \(v1\)/, 'the app output that says why');
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    // Nothing is left: not holdfast, not an app process, not the pid file or the instance.
    // No serving line: a first start where nothing became ready never claims to serve.
    assert.ok(!logLines(logFile).some((l) => l['event'] === 'serving'));
    const holdfastPid = logLines(logFile).find((l) => l['event'] === 'spawn_error')?.['pid'] as number;
    assert.ok(holdfastPid > 0);
    assert.ok(!pidAlive(holdfastPid), 'the background holdfast is gone when the command returns');
    for (const p of appPids(logFile)) assert.ok(!pidAlive(p), `app process ${p} is gone`);
    assert.ok(!existsSync(pidFile));
    const status = await runCli(['status', '--name', 'broken'], env);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /no running holdfast instance|not found|no instance/i);
  } finally {
    app.remove();
    rmSync(work, { recursive: true, force: true });
  }
});

test('in the foreground with --log-file, holdfast still prints where it serves', { timeout: 60_000 }, async () => {
  const app = new AppDir('good', 'v1');
  const work = mkdtempSync(join(tmpdir(), 'hf-fg-'));
  const logFile = join(work, 'fg.log');
  const hf = spawn(process.execPath, [CLI, 'start', app.dir, '--port', '0', '--address', '127.0.0.1', '--name', 'fg', '--log-file', logFile], {
    env: { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: join(work, 'registry') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  hf.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((r) => hf.once('exit', (code) => r(code)));
  try {
    const m = await waitFor('the serving line', () => /^holdfast \S+ serving (\S+) on http:\/\/127\.0\.0\.1:(\d+) \(log: (\S+)\)$/m.exec(out) ?? undefined, 30_000);
    assert.equal(m[1], app.dir);
    assert.equal(m[3], logFile);
    await waitFor('the app process', () => existsSync(logFile) && appPids(logFile).length > 0, 30_000);
    assert.equal((await get(`http://127.0.0.1:${m[2]}/`)).status, 200);
    assert.equal(out.trim().split('\n').length, 1, 'one line on the terminal; the rest goes to the log file');
  } finally {
    hf.kill('SIGTERM');
    assert.equal(await exited, 0);
    for (const p of existsSync(logFile) ? appPids(logFile) : []) await waitFor(`app process ${p} to go`, () => !pidAlive(p), 10_000);
    app.remove();
    rmSync(work, { recursive: true, force: true });
  }
});
