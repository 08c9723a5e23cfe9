// The Rails example (Debian's ruby-rails 6.1 with sqlite3) started for real through the Rack
// loader: smart spawning, shared memory, a good rolling deploy, and the deployment errors Rails
// deploys have, each resisted under load with no failed request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Holdfast, get, pidAlive, stopClean, waitFor } from '../helpers/holdfast';
import { underLoad } from '../helpers/deploy';
import { RAILS_EVIDENCE, RailsReleases } from '../helpers/rails';

const RESIST = ['--rolling-restarts', '--resist-deployment-errors'];
// Rails boots in seconds on a busy machine: give it room.
const SLOW = ['--start-timeout', '120'];

/** Asks until every pid in pids has answered path; returns each pid's body. */
async function askEach(hf: Holdfast, path: string, pids: number[]): Promise<Map<number, string>> {
  const seen = new Map<number, string>();
  await waitFor(`every process to answer ${path}`, async () => {
    const r = await get(hf.url(path));
    assert.equal(r.status, 200, r.body);
    const pid = Number(/pid (\d+)/.exec(r.body)?.[1]);
    seen.set(pid, r.body);
    return pids.every((p) => seen.has(p));
  }, 20_000, 10);
  return seen;
}

function smapsKb(pid: number, field: 'Pss' | 'Rss'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(m![1]);
}

test('the Rails example answers from its database, and every process of a generation is forked from one preloader that loaded it once', async (t) => {
  const rails = new RailsReleases('v1');
  const hf = await Holdfast.start(rails.current, ['--min-instances', '4', ...SLOW]);
  try {
    await waitFor('four processes', () => hf.appPids.size >= 4, 60_000);
    const r = await get(hf.url('/'));
    assert.match(r.body, /^rails v1 pid \d+ db 1$/);
    const pids = [...hf.appPids];
    const boots = await askEach(hf, '/boot', pids);
    const bootedAt = new Set([...boots.values()].map((b) => /booted (\d+)/.exec(b)![1]));
    assert.equal(bootedAt.size, 1, 'one load of the app, shared by every process');

    const spawnMs = hf.lines.filter((l) => typeof l.spawn_ms === 'number').map((l) => l.spawn_ms as number);
    t.diagnostic(`spawn_ms of the 4 processes: ${spawnMs.join(', ')} (the first includes the preloader's boot)`);

    // Copy-on-write: the pool's proportional set size is well below 4 x one process's resident set.
    const pss = pids.reduce((sum, pid) => sum + smapsKb(pid, 'Pss'), 0);
    const rss = smapsKb(pids[0]!, 'Rss');
    t.diagnostic(`PSS of 4 processes: ${pss} kB; RSS of one: ${rss} kB (4 x RSS = ${4 * rss} kB)`);
    assert.ok(pss < 4 * rss * 0.8, `PSS ${pss} kB is not clearly below 4 x ${rss} kB`);
  } finally {
    await stopClean(hf);
    rails.remove();
  }
});

test('a good rolling deploy of the Rails app under load replaces every process with 0 failed requests', async () => {
  const rails = new RailsReleases('v1');
  const hf = await Holdfast.start(rails.current, ['--min-instances', '2', ...RESIST, ...SLOW]);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2, 60_000);
    const before = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
    const { value: r, load } = await underLoad(hf, 8, async () => {
      rails.deploy('good', 'v2');
      return hf.cli(['restart']);
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(load.failed, 0, load.errors.join('\n'));
    assert.ok([...load.bodies.keys()].some((b) => b.includes('v1')) && [...load.bodies.keys()].some((b) => b.includes('v2')));
    assert.ok(before.every((p) => !pidAlive(p)), 'every old process is gone');
    assert.match((await get(hf.url('/'))).body, /^rails v2 /);
  } finally {
    await stopClean(hf);
    rails.remove();
  }
});

for (const [variant, evidence] of Object.entries(RAILS_EVIDENCE) as Array<[keyof typeof RAILS_EVIDENCE, RegExp]>) {
  test(`a Rails deploy with ${variant} is resisted under load: 0 failed requests, the old processes serve on`, async () => {
    const rails = new RailsReleases('v1');
    const hf = await Holdfast.start(rails.current, ['--min-instances', '2', ...RESIST, ...SLOW]);
    try {
      await waitFor('two processes', () => hf.appPids.size >= 2, 60_000);
      let before: number[] = [];
      // 4 connections on processes that serve one request at a time may grow the pool on demand, but
      // not to max_pool_size (6), where a rolling restart would retire an old process first.
      const { value: r, load } = await underLoad(hf, 4, async () => {
        before = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
        rails.deploy(variant, 'v2');
        return hf.cli(['restart']);
      });
      assert.notEqual(r.code, 0, 'restart exits non-zero so a deploy script stops');
      assert.match(r.stdout + r.stderr, evidence);
      assert.equal(load.failed, 0, load.errors.join('\n'));
      assert.ok(load.ok > 20, `only ${load.ok} requests served`);
      const g = (await hf.status()).groups[0]!;
      assert.ok(g.resisting_deployment_error, 'resisting');
      assert.match(g.resisting_deployment_error!.error.output_tail.join('\n'), evidence);
      assert.ok(before.every(pidAlive), 'the old processes still serve');
      assert.ok(g.processes.every((p) => p.generation === 1));
      assert.match((await hf.cli(['status'])).stdout, /Resisting deployment error/);
      assert.match((await get(hf.url('/'))).body, /^rails v1 /);
    } finally {
      await stopClean(hf);
      rails.remove();
    }
  });
}
