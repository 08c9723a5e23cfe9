// `npm run bench:rack`: the figures of issue 16. The Rack hello comparison of `npm run bench`
// (lib/servers.ts: holdfast, `puma -w 2 -t 1:1`, Passenger Standalone) on its own; then smart spawning of the Rails example (test/fixtures/apps/rails): the boot time of the
// first process against the second, and the PSS of 4 smart-spawned processes against 4 x one
// directly spawned process. Writes the run to bench/results/rack-<timestamp>.json.
//
// Environment: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_CONNECTIONS (16), BENCH_RAILS (on; off skips it).
// Exit code: 0 when the run completed (PASS/FAIL lines are for people); 1 when a request failed;
// 2 when the run itself failed.

import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { chooseLoadGenerator } from './lib/load';
import { envNumber, REPO_ROOT, RESULTS_DIR, runMain, sleep, type Resources } from './lib/processes';
import { benchAppServers, startHoldfastOn } from './lib/servers';
import { fixed, median } from './lib/stats';

const GOALS = { aheadOfPassenger: 1.0, ofPuma: 0.9, secondSpawnShare: 0.2 };

function pssKb(pid: number, field: 'Pss' | 'Rss'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function railsFigures(resources: Resources, log: (line: string) => void) {
  const dir = resources.tempDir('hf-bench-rails-');
  cpSync(join(REPO_ROOT, 'test/fixtures/apps/rails'), dir, { recursive: true, filter: (src) => !/\.sqlite3$|\.log$/.test(src) });
  log('Rails example, smart spawning, 4 processes ...');
  const smart = await startHoldfastOn(resources, dir, ['--min-instances', '4', '--max-pool-size', '4'], 4);
  await sleep(1000);
  const smartPss = smart.appPids.reduce((sum, pid) => sum + pssKb(pid, 'Pss'), 0);
  const spawnMs = [...smart.spawnMs];
  await smart.stop();
  log('Rails example, direct spawning, 1 process ...');
  const direct = await startHoldfastOn(resources, dir, ['--min-instances', '1', '--max-pool-size', '1', '--spawn-method', 'direct'], 1);
  await sleep(1000);
  const onePss = pssKb(direct.appPids[0]!, 'Pss');
  const directSpawnMs = direct.spawnMs[0]!;
  await direct.stop();
  return { spawnMs, directSpawnMs, smartPssKb: smartPss, oneDirectPssKb: onePss };
}

runMain(async (resources) => {
  const rounds = envNumber('BENCH_ROUNDS', 3);
  const seconds = envNumber('BENCH_SECONDS', 5);
  const connections = envNumber('BENCH_CONNECTIONS', 16);
  const log = (line: string) => console.log(line);
  const scratch = resources.tempDir('hf-bench-rack-');
  const loadgen = chooseLoadGenerator(resources, scratch, log);

  const servers = await benchAppServers(resources, loadgen, { rounds, seconds, warmupSeconds: 1, connections }, new Set(['rack']), log);
  const rack = servers.rack;
  if (rack && 'fronts' in rack) {
    const h = rack.fronts['holdfast']!;
    log(`${h.ratio >= GOALS.ofPuma ? 'PASS' : 'FAIL'}: holdfast at ${fixed(h.ratio * 100, 0)}% of puma -w 2 -t 1:1 (goal: >= ${GOALS.ofPuma * 100}%)`);
    const p = rack.fronts['passenger'];
    if (p) log(`${h.requestsPerSec > p.requestsPerSec * GOALS.aheadOfPassenger ? 'PASS' : 'FAIL'}: holdfast at ${fixed((h.requestsPerSec / p.requestsPerSec) * 100, 0)}% of Passenger (goal: ahead)`);
  }

  let rails: Awaited<ReturnType<typeof railsFigures>> | undefined;
  if (!/^(off|0|false)$/.test(process.env.BENCH_RAILS ?? '')) {
    rails = await railsFigures(resources, log);
    const [first, ...rest] = rails.spawnMs;
    const second = median(rest);
    log('');
    log(`Rails smart spawning: first process ${first} ms (the preloader's boot included), the others ${rest.join(', ')} ms; direct spawning: ${rails.directSpawnMs} ms`);
    log(`${second <= GOALS.secondSpawnShare * first! ? 'PASS' : 'FAIL'}: the second process in ${fixed((second / first!) * 100, 1)}% of the first one's boot (goal: <= ${GOALS.secondSpawnShare * 100}%)`);
    log(`${rails.smartPssKb < 4 * rails.oneDirectPssKb ? 'PASS' : 'FAIL'}: PSS of 4 smart-spawned processes ${fixed(rails.smartPssKb / 1024, 1)} MB vs 4 x one direct process ${fixed((4 * rails.oneDirectPssKb) / 1024, 1)} MB`);
  }

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `rack-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    } catch {
      return undefined;
    }
  })();
  writeFileSync(file, JSON.stringify({ commit, loadgen: loadgen.name, rounds, seconds, connections, rack, rails }, null, 2));
  log(`\nwritten: ${relative(process.cwd(), file)}`);
  const failed = rack !== undefined && 'fronts' in rack && Object.values(rack.fronts).some((f) => f.failed > 0);
  return failed ? 1 : 0;
});
