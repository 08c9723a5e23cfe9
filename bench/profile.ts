// `npm run bench:profile`: where holdfast's own CPU goes per request. Starts holdfast (2 processes
// of the hello app) under `node --cpu-prof`, puts the benchmark's wrk load on it, stops it with
// SIGTERM so that V8 writes the profile, and prints the top functions by self time within the load
// window, the time per category, and the inclusive time of holdfast's own functions.
//
//   npm run bench:profile                         # profile, then summarize
//   node dist/bench/profile.js FILE.cpuprofile    # summarize an existing profile (whole of it)
//
// Then, when Linux perf is installed and allowed (BENCH_PERF=off skips it), the same load again on a
// holdfast started with --perf-basic-prof, sampled on-CPU by `perf record`: the split between kernel,
// V8 runtime and JIT-compiled JS that V8's wall-clock sampler cannot give (see bench/lib/perf.ts).
//
// Environment: BENCH_SECONDS (8), BENCH_CONNECTIONS (32), BENCH_PROFILE_APP (hello), BENCH_TOP (15),
// BENCH_PROFILE_PATH (proxy: every request proxied; handoff), BENCH_PERF (on), BENCH_LOADGEN as for `npm run bench`. The profile and summary.json are kept in
// bench/results/profile-<timestamp>/ (open the .cpuprofile in Chrome DevTools for the flame chart).

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { summarizeProfile, type CpuProfile, type FunctionTime, type ProfileSummary } from './lib/cpuprofile';
import { startHoldfast } from './lib/fronts';
import { chooseLoadGenerator, type LoadGenerator, type LoadResult } from './lib/load';
import { CpuMeter, threadCores, threadTicks } from './lib/cpu';
import { perfAvailable, perfRecord, type PerfSummary } from './lib/perf';
import { REPO_ROOT, RESULTS_DIR, runMain, sleep, type Resources } from './lib/processes';
import { fixed, table } from './lib/stats';

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function envNumber(name: string, fallback: number): number {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number`);
  return n;
}

function functionRows(rows: readonly FunctionTime[]): string {
  return table([
    ['#', 'self %', 'ms', 'function', 'where', 'category'],
    ...rows.map((r, i) => [String(i + 1), fixed(r.percent, 1), fixed(r.us / 1000, 0), r.functionName, r.where, r.category]),
  ], [3, 4, 5]);
}

function print(summary: ProfileSummary): void {
  say(`\nsamples: ${summary.samples}; window ${fixed(summary.windowUs / 1000, 0)} ms, busy ${fixed(summary.busyUs / 1000, 0)} ms, idle ${fixed(summary.idleUs / 1000, 0)} ms`);
  say('\ntop functions by self time (% of busy time):');
  say(functionRows(summary.topSelf));
  say('\nby category (% of busy time):');
  say(table(summary.byCategory.map((c) => [c.category, `${fixed(c.percent, 1)} %`, `${fixed(c.us / 1000, 0)} ms`])));
  say("\nholdfast's own functions by inclusive time (what they and everything they call cost):");
  say(table([['#', 'incl %', 'ms', 'function', 'where'], ...summary.topHoldfastInclusive.map((r, i) => [String(i + 1), fixed(r.percent, 1), fixed(r.us / 1000, 0), r.functionName, r.where])], [3, 4]));
}

function printPerf(p: PerfSummary): void {
  say(`\nperf (on-CPU samples of holdfast's main thread: ${p.samples}), by binary:`);
  say(table(p.byDso.slice(0, 6).map((l) => [l.name, `${fixed(l.percent, 1)} %`])));
  say('\nperf, inclusive (the call and everything under it, kernel included):');
  say(table(p.inclusive.map((l) => [l.name, `${fixed(l.percent, 1)} %`])));
  say('\nperf, top symbols by self time:');
  say(table(p.topSelf.map((l, i) => [String(i + 1), `${fixed(l.percent, 1)} %`, l.name.length > 110 ? `${l.name.slice(0, 107)}...` : l.name]), [2]));
}

runMain(async (resources) => {
  const top = envNumber('BENCH_TOP', 15);
  const existing = process.argv[2];
  if (existing) {
    print(summarizeProfile(JSON.parse(readFileSync(existing, 'utf8')) as CpuProfile, REPO_ROOT, undefined, top));
    return 0;
  }

  const seconds = envNumber('BENCH_SECONDS', 8);
  const connections = envNumber('BENCH_CONNECTIONS', 32);
  const app = process.env.BENCH_PROFILE_APP ?? 'hello';
  const path = process.env.BENCH_PROFILE_PATH ?? 'proxy';
  if (path !== 'proxy' && path !== 'handoff') throw new Error(`BENCH_PROFILE_PATH must be proxy or handoff, not "${path}"`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = join(RESULTS_DIR, `profile-${stamp}`);
  mkdirSync(dir, { recursive: true });
  const scratch = resources.tempDir('hf-bench-');
  const loadgen = chooseLoadGenerator(resources, scratch, say);

  say(`profiling holdfast's ${path} path (2 processes of the ${app} app) under ${loadgen.name} -t1 -c${connections} -d${seconds}s; profile in ${relative(process.cwd(), dir)}`);
  const holdfast = await startHoldfast(resources, app, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`], handoff: path !== 'proxy' });
  let stopped = false;
  try {
    const warm = await loadgen.run({ url: holdfast.url('/'), connections, seconds: 2 });
    say(`warm-up: ${fixed(warm.requestsPerSec, 0)} req/s`);
    await sleep(500);
    // V8 stamps samples with the monotonic clock, the same one as process.hrtime on Linux.
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    const meter = new CpuMeter();
    const threadsBefore = threadTicks(holdfast.pid);
    const r = await loadgen.run({ url: holdfast.url('/'), connections, seconds });
    const cpu = meter.stop(r.requests, holdfast.cpuParties());
    const threads = threadCores(threadsBefore, threadTicks(holdfast.pid), cpu.seconds);
    const toUs = Number(process.hrtime.bigint() / 1000n);
    say(`under the profiler: ${fixed(r.requestsPerSec, 0)} req/s, p50 ${fixed(r.latencyP50Ms, 2)} ms, p99 ${fixed(r.latencyP99Ms, 2)} ms, failed ${r.failed}`);
    say(`holdfast CPU: ${fixed(cpu.cores.front, 2)} cores, ${fixed(cpu.usPerRequest.front, 0)} µs per request (profiler overhead included); apps ${fixed(cpu.usPerRequest.apps, 0)} µs per request`);
    say(`holdfast threads: ${threads.map((t) => `${t.thread} ${fixed(t.cores, 2)}`).join(', ')} cores`);

    await holdfast.stop();
    stopped = true;
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && f.includes(`.${holdfast.pid}.`));
    if (!file) throw new Error(`holdfast (pid ${holdfast.pid}) wrote no .cpuprofile into ${dir}`);
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    let summary = summarizeProfile(profile, REPO_ROOT, { fromUs, toUs }, top);
    let window = 'the load window';
    if (summary.samples < 100) {
      // Clocks that do not line up after all: summarize the whole profile rather than nothing.
      summary = summarizeProfile(profile, REPO_ROOT, undefined, top);
      window = 'the whole profile (the load window matched no samples)';
    }
    say(`summarizing ${window}: ${relative(process.cwd(), join(dir, file))}`);
    // V8 samples about once a millisecond from a thread of holdfast's own; on a machine whose cores
    // the load saturates that thread can be starved, and each of its few samples then stands for
    // tens of milliseconds of whatever happened to run: say so rather than print a wrong picture.
    const profiledMs = (profile.endTime - profile.startTime) / 1000;
    if (profile.samples.length < profiledMs / 4) {
      say(`WARNING: V8 took ${profile.samples.length} samples in ${fixed(profiledMs, 0)} ms (about one per ms expected): its sampling thread was starved,`);
      say('         so the figures below are unreliable; the perf pass after them samples from the kernel and is not affected.');
    }
    print(summary);

    let perf: PerfSummary | { skipped: string } = { skipped: 'BENCH_PERF=off' };
    let perfLoad = r;
    if (!/^(off|0|false)$/.test(process.env.BENCH_PERF ?? '')) {
      if (!perfAvailable()) perf = { skipped: 'perf is not installed' };
      else {
        const second = await profileWithPerf(resources, app, path === 'proxy', dir, loadgen, connections, seconds, top);
        perfLoad = second.load;
        if (second.perf) {
          perf = second.perf;
          printPerf(second.perf);
        } else {
          perf = { skipped: 'perf record failed (perf_event_paranoid? not root?)' };
          say(`\nperf: ${perf.skipped}`);
        }
      }
    }

    const summaryFile = join(dir, 'summary.json');
    writeFileSync(
      summaryFile,
      JSON.stringify(
        { app, path, seconds, connections, loadGenerator: `${loadgen.name} ${loadgen.version}`, node: process.version, window, load: r, cpu, threads, profile: file, summary, perfLoad, perf },
        null,
        2,
      ) + '\n',
    );
    say(`\nsummary: ${relative(process.cwd(), summaryFile)}`);
    return r.failed > 0 || perfLoad.failed > 0 ? 1 : 0;
  } finally {
    if (!stopped) await holdfast.stop();
  }
});

async function profileWithPerf(
  resources: Resources,
  app: string,
  proxyOnly: boolean,
  dir: string,
  loadgen: LoadGenerator,
  connections: number,
  seconds: number,
  top: number,
): Promise<{ perf: PerfSummary | undefined; load: LoadResult }> {
  say(`\nsecond pass: perf record on holdfast's main thread (node --perf-basic-prof), same load`);
  // --perf-basic-prof also makes V8 write an isolate-*.log into the cwd: keep it with the profile.
  const holdfast = await startHoldfast(resources, app, { nodeArgs: ['--perf-basic-prof', `--logfile=${join(dir, 'v8.log')}`, '--no-logfile-per-isolate'], handoff: !proxyOnly });
  try {
    await loadgen.run({ url: holdfast.url('/'), connections, seconds: 2 });
    await sleep(500);
    const recording = perfRecord(holdfast.pid, join(dir, 'perf.data'));
    await sleep(300);
    const load = await loadgen.run({ url: holdfast.url('/'), connections, seconds });
    const perf = await recording.stop(top);
    say(`under perf: ${fixed(load.requestsPerSec, 0)} req/s, failed ${load.failed}`);
    return { perf, load };
  } finally {
    await holdfast.stop();
    rmSync(`/tmp/perf-${holdfast.pid}.map`, { force: true });
  }
}
