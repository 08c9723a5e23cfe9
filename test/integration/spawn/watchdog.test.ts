// The watchdog on its own: closing it kills nothing, and it never keeps holdfast alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWatchdog } from '../../../src/spawn/watchdog';
import { REPO_ROOT } from '../../helpers/paths';
import { isGone, killLeftovers, waitUntil, waitUntilGone } from '../../helpers/spawn-helpers';

const TEST_TIMEOUT = { timeout: 30_000 };

/** A `sleep` in a process group of its own, as app processes are. */
function sleeperGroup(): ChildProcess & { pid: number } {
  const child = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
  assert.ok(child.pid !== undefined);
  return child as ChildProcess & { pid: number };
}

function pgidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

test('runs in a session of its own, so signals for holdfast\'s terminal do not reach it', TEST_TIMEOUT, async () => {
  const watchdog = startWatchdog();
  try {
    assert.ok(watchdog.pid !== undefined);
    assert.equal(pgidOf(watchdog.pid), watchdog.pid);
    assert.notEqual(pgidOf(watchdog.pid), pgidOf(process.pid));
  } finally {
    await watchdog.close();
  }
  assert.ok(await waitUntil(() => isGone(watchdog.pid!), 3000));
});

test('closing the watchdog leaves registered groups running and ends the watchdog', TEST_TIMEOUT, async () => {
  const sleeper = sleeperGroup();
  const watchdog = startWatchdog();
  try {
    watchdog.register(sleeper.pid);
    await watchdog.close();
    await watchdog.close(); // idempotent
    assert.ok(isGone(watchdog.pid!), 'the watchdog has exited');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!isGone(sleeper.pid), 'the registered group still runs');
    watchdog.register(sleeper.pid); // after close: ignored, not thrown
  } finally {
    killLeftovers([sleeper.pid]);
  }
  assert.deepEqual(await waitUntilGone([sleeper.pid], 3000), []);
});

test('refuses ids that would signal more than one group', () => {
  const watchdog = startWatchdog();
  try {
    assert.throws(() => watchdog.register(0), RangeError);
    assert.throws(() => watchdog.register(1), RangeError);
    assert.throws(() => watchdog.register(-5), RangeError);
    assert.throws(() => watchdog.register(1.5), RangeError);
  } finally {
    void watchdog.close();
  }
});

test('a process whose watchdog is its only child exits by itself, and the watchdog kills only what was still registered', TEST_TIMEOUT, async () => {
  const kept = sleeperGroup();
  const released = sleeperGroup();
  const dir = mkdtempSync(join(tmpdir(), 'hf-wd-'));
  const keptFile = join(dir, 'kept file.sock');
  const releasedFile = join(dir, 'released.sock');
  writeFileSync(keptFile, '');
  writeFileSync(releasedFile, '');
  const watchdogModule = join(REPO_ROOT, 'dist/src/spawn/watchdog.js');
  // The owner registers both groups, unregisters one, and then has nothing left to do.
  const script = `
    const w = require(${JSON.stringify(watchdogModule)}).startWatchdog();
    w.register(${kept.pid}, [${JSON.stringify(keptFile)}]);
    w.register(${released.pid}, [${JSON.stringify(releasedFile)}]);
    w.unregister(${released.pid});
    console.log(w.pid);`;
  const owner = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  owner.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  try {
    assert.ok(await waitUntil(() => owner.exitCode !== null, 10_000), 'the owner exited without being told to');
    const watchdogPid = Number(out.trim());
    assert.ok(watchdogPid > 1);
    assert.deepEqual(await waitUntilGone([kept.pid, watchdogPid], 5000), [], 'its registered group went with it');
    assert.ok(!isGone(released.pid), 'the unregistered group was left alone');
    assert.ok(!existsSync(keptFile), 'the file of the killed group was removed');
    assert.ok(existsSync(releasedFile), 'the file of the unregistered group was left alone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (owner.exitCode === null) owner.kill('SIGKILL');
    killLeftovers([kept.pid, released.pid]);
  }
  assert.deepEqual(await waitUntilGone([kept.pid, released.pid], 3000), []);
});
