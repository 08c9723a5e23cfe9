// No orphans: when holdfast dies, even by SIGKILL, its app processes and what they forked go too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/paths';
import { isGone, killLeftovers, makeSocketDir, waitUntil, waitUntilGone } from '../../helpers/spawn-helpers';

const HARNESS = join(REPO_ROOT, 'dist/test/helpers/spawn-orphan-harness.js');
const TEST_TIMEOUT = { timeout: 60_000 };

interface Harness {
  child: ChildProcess;
  pids: Record<string, number>;
  output: () => string;
}

/** Starts the harness and waits (bounded) for the line with its pids. */
async function startHarness(socketDir: string, mode: string): Promise<Harness> {
  const child = spawn(process.execPath, [HARNESS, socketDir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const ready = await waitUntil(() => out.includes('\n') || child.exitCode !== null, 40_000);
  if (!ready || !out.includes('\n')) {
    child.kill('SIGKILL');
    assert.fail(`the harness printed no pids: ${err}`);
  }
  const pids = JSON.parse(out.slice(0, out.indexOf('\n'))) as Record<string, number>;
  return { child, pids, output: () => out };
}

async function killAndCheck(socketDir: string, mode: string, expected: string[]): Promise<void> {
  const harness = await startHarness(socketDir, mode);
  const appPids = expected.map((name) => {
    const pid = harness.pids[name];
    assert.ok(typeof pid === 'number' && pid > 1, `the harness reported a ${name} pid`);
    return pid;
  });
  assert.ok(appPids.every((pid) => !isGone(pid)), 'everything runs before the kill');
  const exited = new Promise((resolve) => harness.child.once('exit', resolve));
  harness.child.kill('SIGKILL');
  await exited;
  const started = Date.now();
  const left = await waitUntilGone(appPids, 6000);
  killLeftovers(left);
  assert.deepEqual(left, [], `gone within ${Date.now() - started} ms`);
}

test('when holdfast is SIGKILLed, its Node app, its generic app and what that forked are all gone within seconds', TEST_TIMEOUT, async () => {
  const socketDir = makeSocketDir();
  try {
    await killAndCheck(socketDir, 'wait', ['node', 'generic', 'forked', 'watchdog']);
    assert.deepEqual(readdirSync(socketDir), [], 'the Node app removed its socket as it left');
  } finally {
    rmSync(socketDir, { recursive: true, force: true });
  }
});

test('a Node app leaves when holdfast dies even without the watchdog, through its hook alone', TEST_TIMEOUT, async () => {
  const socketDir = makeSocketDir();
  try {
    await killAndCheck(socketDir, 'no-watchdog', ['node']);
    assert.deepEqual(readdirSync(socketDir), []);
  } finally {
    rmSync(socketDir, { recursive: true, force: true });
  }
});

test('a holdfast that terminated its apps and closed its watchdog exits on its own: nothing of spawn/ keeps it alive', TEST_TIMEOUT, async () => {
  const socketDir = makeSocketDir();
  let harness: Harness | undefined;
  try {
    harness = await startHarness(socketDir, 'clean-exit');
    const child = harness.child;
    const exitedByItself = await waitUntil(() => child.exitCode !== null, 15_000);
    assert.ok(exitedByItself, `the harness is still running; it printed: ${harness.output()}`);
    assert.equal(child.exitCode, 0);
    assert.match(harness.output(), /closed\n$/);
    const left = await waitUntilGone(Object.values(harness.pids), 3000);
    assert.deepEqual(left, []);
    assert.deepEqual(readdirSync(socketDir), []);
  } finally {
    if (harness) {
      if (harness.child.exitCode === null) harness.child.kill('SIGKILL');
      killLeftovers(Object.values(harness.pids).filter((pid) => pid !== harness!.pids['harness']));
    }
    rmSync(socketDir, { recursive: true, force: true });
  }
});
