// Deployment error resistance on Django (issue 17) in the releases layout, under load: no visitor may
// see a failed request. The cases every app type shares run on a plain WSGI app in resistance.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { underLoad } from '../../helpers/deploy';
import { Holdfast, get, stopClean, waitFor } from '../../helpers/holdfast';
import { DjangoReleases, SYSTEM_PYTHON, type DjangoVariant } from '../../helpers/wsgi-apps';

const RESIST = ['--rolling-restarts', '--resist-deployment-errors', '--python', SYSTEM_PYTHON];
// One request at a time per process: under the tests' load a WSGI pool grows on demand (a Node
// pool does not). Leave room above what 8 connections can ask for, so that each rolling step starts
// its new process before it stops an old one (at max_pool_size, holdfast stops one first).
const ROOMY = ['--min-instances', '2', '--max-pool-size', '12'];

const DJANGO_BROKEN: Array<[DjangoVariant, RegExp]> = [
  ['view-syntax-error', /SyntaxError/],
  ['bad-database-engine', /'django\.db\.backends\.postgresqll' isn't an available database backend/],
  ['missing-dependency', /No module named 'rest_framework_not_installed'/],
];

for (const [variant, evidence] of DJANGO_BROKEN) {
  test(`Django in the releases layout: a broken release (${variant}) is resisted under load with 0 failed requests, and a fixed one then rolls out`, async () => {
    const rel = new DjangoReleases('good', 'v1');
    const hf = await Holdfast.start(rel.current, [...ROOMY, ...RESIST]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2);
      const { value: r, load } = await underLoad(hf, 8, async () => {
        rel.deploy(variant, 'v2');
        return hf.cli(['restart']);
      });
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, evidence);
      assert.equal(load.failed, 0, load.errors.join('\n'));
      assert.ok(load.ok > 50);
      const g = (await hf.status()).groups[0]!;
      assert.ok(g.resisting_deployment_error, 'resisting');
      assert.match(g.resisting_deployment_error!.error.output_tail.join('\n'), evidence);

      if (variant === 'view-syntax-error') {
        // While resisting, an old process that dies is replaced from the old release, not the broken one.
        const victim = g.processes[0]!.pid;
        const count = g.processes.length;
        process.kill(victim, 'SIGKILL');
        const ps = await waitFor('the replacement', async () => {
          const now = (await hf.status()).groups[0]!.processes;
          return now.length === count && !now.some((p) => p.pid === victim) && now.every((p) => p.state === 'enabled') && now;
        }, 20_000, 250);
        const fresh = ps.filter((p) => !g.processes.some((old) => old.pid === p.pid));
        assert.equal(fresh.length, 1);
        assert.match((fresh[0] as unknown as { release: string }).release, /releases\/1$/);
        for (let i = 0; i < 4; i++) assert.match((await get(hf.url('/'))).body, /version v1/);
      }

      const repaired = await underLoad(hf, 8, async () => {
        rel.deploy('good', 'v3');
        return hf.cli(['restart']);
      });
      assert.equal(repaired.value.code, 0, repaired.value.stdout + repaired.value.stderr);
      assert.equal(repaired.load.failed, 0, repaired.load.errors.join('\n'));
      assert.equal((await hf.status()).groups[0]!.resisting_deployment_error, null);
      assert.match((await get(hf.url('/'))).body, /version v3/);
    } finally {
      await stopClean(hf);
      rel.remove();
    }
  });
}
