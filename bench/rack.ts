// `npm run bench:rack`: the figures of issue 16. The Rack hello (bench/apps/rack-hello) with 2
// processes behind holdfast (smart spawning, one request at a time per process), `puma -w 2 -t 1:1`
// and Passenger Standalone (when `passenger` is installed), the same wrk load on each in interleaved
// rounds; then smart spawning of the Rails example (test/fixtures/apps/rails): the boot time of the
// first process against the second, and the PSS of 4 smart-spawned processes against 4 x one
// directly spawned process. Writes the run to bench/results/rack-<timestamp>.json.
//
// Environment: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_CONNECTIONS (16), BENCH_RAILS (on; off skips it).
// Exit code: 0 when the run completed (PASS/FAIL lines are for people); 1 when a request failed;
// 2 when the run itself failed.

import { execFileSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { chooseLoadGenerator, which, type LoadResult } from './lib/load';
import { APPS_DIR, CLI, REPO_ROOT, RESULTS_DIR, alive, freePort, readLines, runMain, sleep, waitForHttp, type Resources } from './lib/processes';
import { fixed, median, table } from './lib/stats';

const GOALS = { aheadOfPassenger: 1.0, ofPuma: 0.9, secondSpawnShare: 0.2 };
const START_TIMEOUT_MS = 120_000;

interface RackFront {
  name: 'holdfast' | 'puma' | 'passenger';
  label: string;
  url: string;
  stop(): Promise<void>;
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number, not "${raw}"`);
  return n;
}

interface HoldfastRun {
  child: ChildProcess;
  port: number;
  /** spawn_ms of each ready process, in order. */
  spawnMs: number[];
  appPids: number[];
  stop(): Promise<void>;
}

async function startHoldfastOn(resources: Resources, appDir: string, args: string[], processes: number): Promise<HoldfastRun> {
  const registryDir = resources.tempDir('hf-bench-rack-reg-');
  const env = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registryDir };
  const child = resources.spawn(
    process.execPath,
    [CLI, 'start', appDir, '--port', '0', '--address', '127.0.0.1', '--environment', 'production', '--start-timeout', '120', '--name', `bench-rack-${process.pid}`, ...args],
    { env, cwd: REPO_ROOT },
  );
  let port = 0;
  let spawnError: string | undefined;
  const spawnMs: number[] = [];
  const appPids: number[] = [];
  const { tail } = readLines(child, (raw) => {
    try {
      const line = JSON.parse(raw) as { msg?: string; port?: unknown; app_pid?: unknown; spawn_ms?: unknown };
      const msg = String(line.msg ?? '');
      if (typeof line.port === 'number' && msg.includes('serving')) port = line.port;
      if (typeof line.app_pid === 'number' && typeof line.spawn_ms === 'number' && / ready/.test(msg)) {
        appPids.push(line.app_pid);
        spawnMs.push(line.spawn_ms);
      }
      if (/spawn error/.test(msg)) spawnError = msg;
    } catch {
      // not a log line
    }
  });
  const stop = async () => {
    await resources.stop(child, 'SIGTERM', 40_000);
    resources.removeDir(registryDir);
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (port === 0 || appPids.length < processes) {
    if (!alive(child) || spawnError || Date.now() > deadline) {
      await stop();
      throw new Error(`holdfast did not start (${spawnError ?? 'not ready in time'}):\n${tail.join('\n')}`);
    }
    await sleep(50);
  }
  return { child, port, spawnMs, appPids, stop };
}

async function startHoldfast(resources: Resources, appDir: string): Promise<RackFront> {
  const run = await startHoldfastOn(resources, appDir, ['--min-instances', '2', '--max-pool-size', '2'], 2);
  return { name: 'holdfast', label: 'holdfast, 2 processes (smart spawning, concurrency 1)', url: `http://127.0.0.1:${run.port}/`, stop: run.stop };
}

async function startPuma(resources: Resources, appDir: string): Promise<RackFront | string> {
  const puma = which('puma');
  if (!puma) return 'puma is not installed (apt-get install puma)';
  const port = await freePort();
  const child = resources.spawn(puma, ['-w', '2', '-t', '1:1', '-e', 'production', '-b', `tcp://127.0.0.1:${port}`, join(appDir, 'config.ru')], { cwd: appDir, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}/`;
  await waitForHttp(url, START_TIMEOUT_MS, child);
  await sleep(1000); // both workers booted
  return { name: 'puma', label: 'puma -w 2 -t 1:1', url, stop: () => resources.stop(child) };
}

async function startPassenger(resources: Resources, appDir: string): Promise<RackFront | string> {
  const passenger = which('passenger');
  if (!passenger) return 'Passenger is not installed (apt-get install passenger)';
  const port = await freePort();
  const work = resources.tempDir('hf-bench-passenger-');
  cpSync(appDir, work, { recursive: true });
  const child = resources.spawn(
    passenger,
    ['start', '--engine', 'builtin', '--address', '127.0.0.1', '--port', String(port), '--min-instances', '2', '--max-pool-size', '2', '--environment', 'production', '--log-file', join(work, 'passenger.log'), '--pid-file', join(work, 'passenger.pid')],
    { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const url = `http://127.0.0.1:${port}/`;
  await waitForHttp(url, START_TIMEOUT_MS, child);
  await sleep(2000); // both processes spawned
  return { name: 'passenger', label: 'Passenger Standalone, 2 processes', url, stop: () => resources.stop(child, 'SIGTERM', 20_000) };
}

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
  const appDir = join(APPS_DIR, 'rack-hello');

  const fronts: RackFront[] = [await startHoldfast(resources, appDir)];
  const skipped: string[] = [];
  for (const start of [startPuma, startPassenger]) {
    const front = await start(resources, appDir);
    if (typeof front === 'string') skipped.push(front);
    else fronts.push(front);
  }
  for (const s of skipped) log(`skipped: ${s}`);

  const results = new Map<string, LoadResult[]>(fronts.map((f) => [f.name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const front of fronts) {
      await loadgen.run({ url: front.url, connections, seconds: 1 }); // warm-up
      const r = await loadgen.run({ url: front.url, connections, seconds });
      results.get(front.name)!.push(r);
      log(`round ${round} ${front.name}: ${fixed(r.requestsPerSec, 0)} req/s, p50 ${fixed(r.latencyP50Ms, 2)} ms, p99 ${fixed(r.latencyP99Ms, 2)} ms, failed ${r.failed}`);
    }
  }
  for (const f of fronts) await f.stop();

  const rps = (name: string) => median((results.get(name) ?? []).map((r) => r.requestsPerSec));
  const rows = fronts.map((f) => {
    const rs = results.get(f.name)!;
    return [f.label, fixed(rps(f.name), 0), fixed(median(rs.map((r) => r.latencyP50Ms)), 2), fixed(median(rs.map((r) => r.latencyP99Ms)), 2), String(rs.reduce((n, r) => n + r.failed, 0))];
  });
  log('');
  log(`Rack hello, ${connections} connections, ${seconds} s x ${rounds} rounds (${loadgen.name}), medians:`);
  log(table([['front', 'req/s', 'p50 ms', 'p99 ms', 'failed'], ...rows], [0]));
  const holdfast = rps('holdfast');
  if (results.has('puma')) {
    const ratio = holdfast / rps('puma');
    log(`${ratio >= GOALS.ofPuma ? 'PASS' : 'FAIL'}: holdfast at ${fixed(ratio * 100, 0)}% of puma -w 2 -t 1:1 (goal: >= ${GOALS.ofPuma * 100}%)`);
  }
  if (results.has('passenger')) {
    const ratio = holdfast / rps('passenger');
    log(`${ratio > GOALS.aheadOfPassenger ? 'PASS' : 'FAIL'}: holdfast at ${fixed(ratio * 100, 0)}% of Passenger (goal: ahead)`);
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
  writeFileSync(file, JSON.stringify({ commit, loadgen: loadgen.name, rounds, seconds, connections, skipped, results: Object.fromEntries(results), rails }, null, 2));
  log(`\nwritten: ${relative(process.cwd(), file)}`);
  const failed = [...results.values()].flat().some((r) => r.failed > 0);
  return failed ? 1 : 0;
});
