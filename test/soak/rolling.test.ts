// Soak (npm run test:soak), for a Node app and a Rack app: 20 good rolling deploys in a row, 3 processes, 16 connections of load
// throughout each, not one failed request in total; then fixed-pool rounds that alternate good and
// late-crash deploys in the releases layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppDir, ReleasesDir } from '../helpers/apps';
import type { AppKind } from '../helpers/apps';
import { goodRollingDeploy, underLoad } from '../helpers/deploy';
import { Holdfast, waitFor } from '../helpers/holdfast';

const ROUNDS = Number(process.env.SOAK_ROUNDS || 20);
/** SOAK_KINDS=node,rack (the default): the app types soaked, a Node app and a Rack app (smart-spawned). */
const KINDS = (process.env.SOAK_KINDS || 'node,rack').split(',').map((k) => k.trim()) as AppKind[];

for (const kind of KINDS) {
  const name = kind === 'rack' ? 'Rack app' : 'Node app';
  test(`${name}: ${ROUNDS} good rolling deploys in a row under load fail no request`, { timeout: 30 * 60_000 }, async () => {
    const app = new AppDir('good', 'v0', kind);
    // A Rack process serves one request at a time: 16 connections would grow the pool, so it is fixed at 3.
    const hf = await Holdfast.start(app.dir, ['--min-instances', '3', ...(kind === 'rack' ? ['--max-pool-size', '3'] : []), '--rolling-restarts', '--resist-deployment-errors']);
    let requests = 0;
    let failed = 0;
    try {
      await waitFor('three processes', () => hf.appPids.size >= 3, 30_000);
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

  // A fixed pool (min_instances = max_pool_size) in the releases layout: good deploys alternate with
  // a release that boots and dies 5 s later. Every good round rolls out with no request failed; every
  // late-crash round ends resisted, with the previous release back at full size and serving.
  test(`${name}, fixed pool of 3: good deploys and late-crash deploys, alternating, fail no request and never leave the pool short`, { timeout: 30 * 60_000 }, async () => {
    const rounds = Math.max(2, Math.floor(ROUNDS / 4));
    const releases = new ReleasesDir('good', 'v0', kind);
    const hf = await Holdfast.start(releases.current, ['--min-instances', '3', '--max-pool-size', '3', '--rolling-restarts', '--resist-deployment-errors']);
    let failed = 0;
    try {
      await waitFor('three processes', () => hf.appPids.size >= 3, 30_000);
      for (let round = 1; round <= rounds; round++) {
        const good = await goodRollingDeploy(hf, releases, `v${round}`);
        failed += good.failed;
        const serving = (await hf.status()).groups[0]!.processes.map((p) => p.release);
        const { value: r, load } = await underLoad(hf, 16, async () => {
          releases.deploy('crash-later', `bad${round}`);
          return hf.cli(['restart']);
        });
        assert.notEqual(r.code, 0, 'the late-crash deploy fails its restart');
        await waitFor(
          'the previous release back at full size',
          async () => {
            const g = (await hf.status()).groups[0]!;
            return g.processes.length === 3 && g.processes.every((p) => p.state === 'enabled' && p.release === serving[0]);
          },
          30_000,
          250,
        );
        // Only requests on the dying processes of the broken release may fail: their own connections
        // reset, or a 502 for a request they had started; never an error page for lost capacity.
        assert.equal(load.statuses[503] ?? 0, 0, `round ${round}: ${load.statuses[503]} visitors got 503`);
        assert.equal(load.statuses[504] ?? 0, 0, `round ${round}: ${load.statuses[504]} visitors got 504`);
        for (const e of load.errors) assert.match(e, /^502|ECONNRESET|socket hang up|EPIPE/, `round ${round}: ${e}`);
        process.stdout.write(`# fixed-pool round ${round}/${rounds}: good ${good.requests} requests (${good.failed} failed); late crash ${load.requests} requests (${load.failed} failed, all on the crashing processes)\n`);
      }
    } finally {
      const { code, leftover } = await hf.stop();
      releases.remove();
      assert.equal(code, 0);
      assert.deepEqual(leftover, []);
    }
    assert.equal(failed, 0);
  });
}
