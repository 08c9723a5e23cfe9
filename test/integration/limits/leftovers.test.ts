// A holdfast that dies (SIGKILL) leaves no temp dir behind: its watchdog removes them, and the next
// command removes its stale instance dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive, waitFor } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';
import { launch } from './launch';

test('after holdfast is killed with SIGKILL, its temp dirs and app processes are gone, and the next status removes its instance dir', async () => {
  const temp = mkdtempSync(join(tmpdir(), 'hf-leftover-'));
  const hf = await launch(fixtureApp('hello'), [], { env: { TMPDIR: temp } });
  try {
    const pids = await hf.appPids();
    assert.ok(readdirSync(temp).some((n) => n.startsWith('hf-')), 'holdfast made its socket dir in TMPDIR');
    hf.child.kill('SIGKILL');
    await hf.exited;
    await waitFor('the app processes to go', () => pids.every((p) => !pidAlive(p)), 10_000);
    await waitFor('the temp dirs to go', () => readdirSync(temp).length === 0, 10_000);
    assert.ok(existsSync(join(hf.registryDir, hf.name)), 'the instance dir is stale until the next command');
    const r = await hf.cli(['status']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no running holdfast instance/);
    assert.equal(existsSync(join(hf.registryDir, hf.name)), false, 'the next command removed the stale instance dir');
  } finally {
    await hf.stop();
    rmSync(temp, { recursive: true, force: true });
  }
});
