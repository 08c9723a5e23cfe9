// SIGHUP and SIGUSR2 (what a closing SSH session, `systemctl reload` and stray `kill`s send) never
// take holdfast down or cut a request: SIGHUP restarts the app, SIGUSR2 is logged and ignored, SIGPIPE only ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Holdfast, get, stopClean } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';

for (const path of ['hand-off', 'proxy'] as const) {
  test(`SIGHUP and SIGUSR2 during an in-flight 2 s request: it completes 200 and holdfast serves after (${path} path)`, async () => {
    const hf = await Holdfast.start(fixtureApp('limits'), ['--rolling-restarts', ...(path === 'proxy' ? ['--no-connection-handoff'] : [])]);
    try {
      const slow = get(hf.url('/slow?ms=2000'));
      await new Promise((r) => setTimeout(r, 300));
      hf.child.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 200));
      hf.child.kill('SIGUSR2');
      const reply = await slow;
      assert.equal(reply.status, 200);
      assert.match(reply.body, /^slow done/);
      assert.equal(hf.child.exitCode, null, 'holdfast is still running');
      await hf.waitForLog('the SIGHUP line', (l) => l.event === 'signal_received' && l.signal === 'SIGHUP' && l.action === 'restart');
      await hf.waitForLog('the SIGUSR2 line', (l) => l.event === 'signal_received' && l.signal === 'SIGUSR2' && l.action === 'ignored');
      await hf.waitForLog('the restart SIGHUP asked for', (l) => l.event === 'signal_restart_finished' && l.outcome === 'succeeded', 30_000);
      const after = await get(hf.url('/'));
      assert.equal(after.status, 200);
      assert.match(after.body, /^ok /);
      const status = await hf.status();
      assert.equal(status.groups[0]!.generation, 2, 'SIGHUP restarted the app once');
    } finally {
      await stopClean(hf);
    }
  });
}

test('SIGPIPE is ignored without a log line (the kernel sends one for each write to a visitor who left): holdfast serves on', async () => {
  const hf = await Holdfast.start(fixtureApp('limits'), ['--no-connection-handoff']);
  try {
    hf.child.kill('SIGPIPE');
    hf.child.kill('SIGPIPE');
    const after = await get(hf.url('/'));
    assert.equal(after.status, 200);
    assert.equal(hf.child.exitCode, null, 'holdfast is still running');
    await hf.cli(['status']); // a round trip through holdfast's loop after the signals
    assert.deepEqual(hf.lines.filter((l) => l.signal === 'SIGPIPE'), []);
  } finally {
    await stopClean(hf);
  }
});
