// The watchdog shows in `ps` as a short, honest line naming its holdfast, and leaves no file behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { startWatchdog } from '../../../src/spawn/watchdog';
import { waitFor } from '../../helpers/holdfast';

test('ps shows the watchdog as "holdfast-watchdog watchdog <holdfast pid>", and its script file is gone', async () => {
  const watchdog = startWatchdog();
  try {
    const pid = watchdog.pid!;
    const cmdline = await waitFor('the watchdog to run its script', () => {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      return args[0] === 'holdfast-watchdog' ? args : undefined;
    });
    assert.deepEqual(cmdline, ['holdfast-watchdog', 'watchdog', String(process.pid)]);
    // It removed its script and dir as it started, and does not hold a temp dir as its cwd.
    await waitFor('its cwd to be /', () => readFileSyncLink(`/proc/${pid}/cwd`) === '/');
    assert.ok(!readFileSync(`/proc/${pid}/maps`, 'utf8').includes('holdfast-watchdog-'));
  } finally {
    await watchdog.close();
  }
  assert.ok(!existsSync(`/proc/${watchdog.pid}`) || readFileSync(`/proc/${watchdog.pid}/status`, 'utf8').includes('State:\tZ'), 'the watchdog has exited');
});

function readFileSyncLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
