// The command functions in process, against a real admin server, to see what a terminal sees.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInstance } from '../../../src/admin/instance';
import { startAdminServer } from '../../../src/admin/server';
import type { CommandIo } from '../../../src/cli/admin-io';
import { restartCommand } from '../../../src/cli/restart';
import { statusCommand } from '../../../src/cli/status';
import type { RestartOutcome } from '../../../src/core/operations';
import { silentLogger } from '../../../src/log/logger';
import { FakeControl, type RestartScript } from '../../helpers/fake-control';
import { spawnErrorSnapshot } from '../../helpers/status-fixtures';

const STEPS = [0, 1, 2].map((replaced) => ({ kind: 'rolling' as const, generation: 4, total: 2, replaced }));

async function serve(t: TestContext, script: RestartScript): Promise<{ io: CommandIo & { out: () => string; err: () => string }; control: FakeControl }> {
  const base = await mkdtemp(join(tmpdir(), 'hf-cmd-'));
  const registry = join(base, 'registry');
  const instance = await createInstance({ name: 'shop', registryDir: registry, address: '127.0.0.1', port: 3000, appRoot: '/srv/shop/current' });
  const control = new FakeControl({ script });
  const server = await startAdminServer({ instance, control, logger: silentLogger(), version: '0.1.0' });
  t.after(async () => {
    await server.close();
    await instance.remove();
    await rm(base, { recursive: true, force: true });
  });
  let out = '';
  let err = '';
  return {
    control,
    io: {
      registryDir: registry,
      stdout: { isTTY: true, write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      out: () => out,
      err: () => err,
    },
  };
}

test('on a terminal, restart rewrites one progress line in place and ends it before the result', async (t) => {
  const outcome: RestartOutcome = { outcome: 'succeeded', kind: 'rolling', generation: 4, replaced: 2, total: 2, error: null };
  const { io } = await serve(t, { steps: STEPS, outcome, stepMs: 1 });
  assert.equal(await restartCommand({}, io), 0);
  assert.equal(
    io.out(),
    '\r\x1b[2KRestarting /srv/shop/current: 0 of 2 replaced' +
      '\r\x1b[2KRestarting /srv/shop/current: 1 of 2 replaced' +
      '\r\x1b[2KRestarting /srv/shop/current: 2 of 2 replaced' +
      '\nRestarted /srv/shop/current: 2 of 2 replaced, now generation 4 (rolling restart).\n',
  );
  assert.equal(io.err(), '');
});

test('a restart that the new version cannot survive returns exit code 1 and writes the error to stderr', async (t) => {
  const outcome: RestartOutcome = { outcome: 'resisted', kind: 'rolling', generation: 4, replaced: 1, total: 2, error: spawnErrorSnapshot() };
  const { io, control } = await serve(t, { steps: STEPS.slice(0, 2), outcome, stepMs: 1 });
  assert.equal(await restartCommand({ rolling: true }, io), 1);
  assert.match(io.out(), /1 of 2 replaced\n$/);
  assert.match(io.err(), /^holdfast: the rolling restart of \/srv\/shop\/current/);
  assert.match(io.err(), /SyntaxError/);
  assert.deepEqual(control.calls, [{ method: 'restart', rolling: true }]);
});

test('status writes the rendered picture, or JSON with --json', async (t) => {
  const { io } = await serve(t, { steps: [], outcome: { outcome: 'succeeded', kind: 'plain', generation: 1, replaced: 0, total: 0, error: null } });
  await statusCommand({}, io);
  assert.match(io.out(), /^Version : 0\.1\.0\n/);
  await statusCommand({ json: true }, io);
  assert.match(io.out(), /\n\{\n {2}"version": "0\.1\.0",\n {2}"instance": \{/);
});
