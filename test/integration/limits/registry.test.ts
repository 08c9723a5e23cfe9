// Nobody else has a hand in the registry, root included: a foreign or world-writable registry is
// refused at start, and a planted instance.json or link never makes holdfast delete anything
// outside it; a command run by another user deletes nothing and says what it may not read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Holdfast, get, runCli, stopClean, type CliResult } from '../../helpers/holdfast';
import { CLI, fixtureApp } from '../../helpers/paths';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const rootOnly = isRoot ? false : 'needs root (to hand dirs to nobody)';

function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

function asNobody(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, uid: NOBODY, gid: NOBODY, cwd: '/', timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0, stdout, stderr });
    });
  });
}

test('root refuses a registry owned by nobody with mode 0777, and one of its own that others may write, naming it', { skip: rootOnly }, async () => {
  const base = mkdtempSync(join(tmpdir(), 'hf-regtest-'));
  try {
    const foreign = join(base, 'foreign');
    mkdirSync(foreign);
    chownSync(foreign, NOBODY, NOBODY);
    chmodSync(foreign, 0o777);
    const r = await runCli(['start', fixtureApp('hello'), '--port', '0', '--name', 'reg'], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: foreign }, 30_000);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`instance registry ${foreign} belongs to another user \\(uid ${NOBODY}\\)`));
    assert.deepEqual(readdirSync(foreign), [], 'nothing was created in it');

    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r2 = await runCli(['start', fixtureApp('hello'), '--port', '0', '--name', 'reg'], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: open }, 30_000);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr.trim(), new RegExp(`^holdfast: the instance registry ${open} is writable by group or others \\(mode 0777\\)`));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a planted stale instance.json or link pointing outside the registry makes root\'s status delete nothing outside it', { skip: rootOnly }, async () => {
  const base = mkdtempSync(join(tmpdir(), 'hf-regtest-'));
  // Victims outside the registry, named as holdfast's own short socket dirs are.
  const victims = [mkdtempSync(join(tmpdir(), 'hf-admin-')), mkdtempSync(join(tmpdir(), 'hf-admin-')), join(base, 'precious')];
  try {
    const registry = join(base, 'registry');
    mkdirSync(registry, { mode: 0o700 });
    for (const v of victims) {
      mkdirSync(v, { recursive: true });
      writeFileSync(join(v, 'admin.sock'), 'not a socket');
      writeFileSync(join(v, '.holdfast-marker'), 'f'.repeat(32));
    }
    chownSync(victims[1]!, NOBODY, NOBODY);
    const plant = (name: string, socketPath: string, marker?: string) => {
      mkdirSync(join(registry, name), { mode: 0o700 });
      writeFileSync(join(registry, name, 'instance.json'), JSON.stringify({ name, pid: deadPid(), address: '127.0.0.1', port: 1, app_root: '/', version: '0', started_at: new Date(0).toISOString(), socket_path: socketPath, ...(marker ? { marker } : {}) }));
    };
    plant('no-marker', join(victims[0]!, 'admin.sock'));
    plant('wrong-marker', join(victims[0]!, 'admin.sock'), 'e'.repeat(32));
    plant('nobodys', join(victims[1]!, 'admin.sock'), 'f'.repeat(32));
    plant('elsewhere', join(victims[2]!, 'admin.sock'), 'f'.repeat(32));
    symlinkSync(victims[2]!, join(registry, 'linked'));
    const r = await runCli(['status'], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry }, 20_000);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stderr, /internal error/);
    for (const v of victims) assert.deepEqual(readdirSync(v).sort(), ['.holdfast-marker', 'admin.sock'], `${v} is untouched`);
    assert.deepEqual(readdirSync(registry), ['linked'], 'the stale dirs holdfast could prove stale are gone; the link stays');
  } finally {
    for (const v of victims) rmSync(v, { recursive: true, force: true });
    rmSync(base, { recursive: true, force: true });
  }
});

test('status run by another user deletes nothing, never says "internal error", and says what it may not read', { skip: rootOnly }, async () => {
  const base = mkdtempSync(join(tmpdir(), 'hf-regtest-'));
  chmodSync(base, 0o755);
  const registry = join(base, 'registry');
  mkdirSync(registry);
  chmodSync(registry, 0o755); // readable by others, writable by root alone: accepted
  const hf = await Holdfast.start(fixtureApp('hello'), [], { registryDir: registry });
  try {
    const env = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry };
    for (const args of [['status'], ['status', '--name', hf.name], ['stop', '--name', hf.name]]) {
      const r = await asNobody(args, env);
      assert.equal(r.code, 1, args.join(' '));
      assert.doesNotMatch(r.stderr, /internal error/, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /not yours to (read|use)/, r.stderr);
      assert.ok(existsSync(join(registry, hf.name, 'instance.json')), 'the live instance dir stays');
    }
    const hidden = join(base, 'hidden');
    mkdirSync(hidden, { mode: 0o700 });
    const r = await asNobody(['status'], { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: hidden });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^holdfast: cannot read the instance registry .*EACCES/);
    assert.equal((await get(hf.url('/'))).status, 200, 'holdfast still serves');
  } finally {
    await stopClean(hf);
    rmSync(base, { recursive: true, force: true });
  }
});
