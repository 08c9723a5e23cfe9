// The service files in contrib/: the systemd unit passes systemd-analyze verify, and the logrotate
// snippet, run by the real logrotate, rotates a running holdfast's log file and holdfast reopens it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppDir } from '../helpers/apps';
import { get, pidAlive, waitFor } from '../helpers/holdfast';
import { CLI, REPO_ROOT } from '../helpers/paths';

const UNIT = join(REPO_ROOT, 'contrib/systemd/holdfast.service');
const LOGROTATE_CONF = join(REPO_ROOT, 'contrib/logrotate/holdfast');

function which(program: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (dir && existsSync(join(dir, program))) return join(dir, program);
  }
  return null;
}

function unitSetting(key: string): string[] {
  return [...readFileSync(UNIT, 'utf8').matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
}

const isRoot = process.getuid?.() === 0;

test('the example systemd unit passes systemd-analyze verify with no complaint', { skip: !which('systemd-analyze') && !isRoot ? 'systemd-analyze is missing and only root may install it (scripts/verify-systemd.sh)' : false }, async () => {
  const r = await new Promise<{ code: number; out: string }>((resolve) =>
    execFile('sh', [join(REPO_ROOT, 'scripts/verify-systemd.sh')], { timeout: 600_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, out: stdout + stderr }),
    ),
  );
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /passes systemd-analyze verify/);
});

test('the systemd unit lets holdfast, not systemd, stop the app processes, and waits longer than a drain', () => {
  assert.deepEqual(unitSetting('Type'), ['simple']);
  assert.deepEqual(unitSetting('KillMode'), ['mixed'], 'SIGTERM to holdfast alone; SIGKILL to the cgroup only at the timeout');
  assert.deepEqual(unitSetting('KillSignal'), ['SIGTERM']);
  const stop = Number(/^(\d+)$/.exec(unitSetting('TimeoutStopSec')[0] ?? '')?.[1]);
  assert.ok(stop > 30 + 5, `TimeoutStopSec ${stop} is above drain_timeout (30 s) + the SIGKILL grace (5 s)`);
  assert.deepEqual(unitSetting('Restart'), ['on-failure']);
  assert.match(unitSetting('ExecStart')[0]!, /^(\S*\/)?holdfast start \S+ --name shop\b/);
  assert.match(unitSetting('ExecReload')[0]!, /^(\S*\/)?holdfast restart --name shop$/);
  const registry = unitSetting('Environment').find((e) => e.startsWith('HOLDFAST_INSTANCE_REGISTRY_DIR='));
  assert.equal(registry, `HOLDFAST_INSTANCE_REGISTRY_DIR=/run/${unitSetting('RuntimeDirectory')[0]}`);
});

test('logrotate with the example snippet rotates a running holdfast log file, and holdfast writes on in a new one', { skip: which('logrotate') ? false : 'logrotate is not installed (apt-get install logrotate)', timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-logrotate-'));
  const logs = join(dir, 'logs');
  const registry = join(dir, 'registry');
  mkdirSync(logs);
  const log = join(logs, 'shop.log');
  const app = new AppDir('good', 'v1');
  const hf = spawn(process.execPath, [CLI, 'start', app.dir, '--port', '0', '--address', '127.0.0.1', '--name', 'shop', '--log-file', log], {
    env: { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry },
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((r) => hf.once('exit', (code) => r(code)));
  const appPids = () => [...readAll().matchAll(/"app_pid":(\d+),"generation":1,"cause":"start"/g)].map((m) => Number(m[1]));
  const readAll = () => [log + '.1', log].filter(existsSync).map((f) => readFileSync(f, 'utf8')).join('');
  try {
    await waitFor('holdfast to serve', () => existsSync(log) && /app process \d+ ready/.test(readFileSync(log, 'utf8')), 20_000);
    const port = (JSON.parse(readFileSync(join(registry, 'shop', 'instance.json'), 'utf8')) as { port: number }).port;
    // The snippet as shipped, pointed at this test's log dir and registry instead of /var/log and /run.
    const shipped = readFileSync(LOGROTATE_CONF, 'utf8');
    const globs = '/run/holdfast-*/*/instance.json /tmp/holdfast-instances/*/instance.json';
    assert.ok(shipped.includes('/var/log/holdfast/*.log {') && shipped.includes(globs));
    const conf = join(dir, 'logrotate.conf');
    writeFileSync(conf, shipped.replace('/var/log/holdfast/*.log', join(logs, '*.log')).replace(globs, join(registry, '*/instance.json')));

    execFileSync(which('logrotate')!, ['-f', '-s', join(dir, 'state'), conf]);
    assert.ok(existsSync(log + '.1'), 'the old file was moved aside');
    assert.match(readFileSync(log + '.1', 'utf8'), /serving .* on http:/);
    await waitFor('the reopened file', () => existsSync(log) && /log file reopened/.test(readFileSync(log, 'utf8')), 10_000);
    assert.doesNotMatch(readFileSync(log, 'utf8'), /serving .* on http:/, 'the new file starts fresh');

    // What holdfast logs from now on goes to the new file.
    await get(`http://127.0.0.1:${port}/`);
    hf.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(readFileSync(log, 'utf8'), /"msg":"stopped"/);
    assert.doesNotMatch(readFileSync(log + '.1', 'utf8'), /"msg":"stopped"/);
  } finally {
    if (hf.exitCode === null && hf.signalCode === null) hf.kill('SIGKILL');
    await exited;
    const pids = appPids();
    assert.ok(pids.length >= 1);
    await waitFor('app processes to go', () => pids.every((p) => !pidAlive(p)), 10_000);
    rmSync(dir, { recursive: true, force: true });
    app.remove();
  }
});
