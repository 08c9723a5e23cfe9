// Soak (npm run test:soak): 20 good rolling deploys in a row, 3 processes, 16 connections of load
// throughout each; not one failed request in total.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppDir } from '../helpers/apps';
import { goodRollingDeploy } from '../helpers/deploy';
import { Holdfast, waitFor } from '../helpers/holdfast';

const ROUNDS = Number(process.env.SOAK_ROUNDS || 20);

test(`${ROUNDS} good rolling deploys in a row under load fail no request`, { timeout: 30 * 60_000 }, async () => {
  const app = new AppDir('good', 'v0');
  const hf = await Holdfast.start(app.dir, ['--min-instances', '3', '--rolling-restarts', '--resist-deployment-errors']);
  let requests = 0;
  let failed = 0;
  try {
    await waitFor('three processes', () => hf.appPids.size >= 3);
    for (let round = 1; round <= ROUNDS; round++) {
      const load = await goodRollingDeploy(hf, app, `v${round}`);
      requests += load.requests;
      failed += load.failed;
      process.stdout.write(`# soak round ${round}/${ROUNDS}: ${load.requests} requests, ${load.failed} failed\n`);
    }
  } finally {
    const { code, leftover } = await hf.stop();
    app.remove();
    assert.equal(code, 0);
    assert.deepEqual(leftover, []);
  }
  process.stdout.write(`# soak total: ${requests} requests, ${failed} failed\n`);
  assert.equal(failed, 0);
});
