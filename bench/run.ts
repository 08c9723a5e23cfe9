// `npm run bench`: the figures of issues 6 and 14. Serves the bundled Node apps (bench/apps: hello,
// ~1 ms CPU) directly with one Node process, behind holdfast with 2 processes (hand-off and proxy
// path), behind nginx with 2 processes (when nginx is there or can be fetched) and in PM2's cluster
// mode (installed on first use), puts the same wrk load on each in interleaved rounds, and prints
// every figure as a ratio to "direct" of the same round, with p50/p99 latency, failed requests and
// holdfast's own RSS (idle, under load, streaming large bodies). Then holdfast against the app
// servers its users come from (lib/servers.ts): Rack (puma, Passenger), WSGI (gunicorn, Passenger),
// and puma -t 1:1 and gunicorn sync workers behind the generic path against their own 2-worker
// mode. Writes the whole run to bench/results/<timestamp>.json. See docs/performance.md.
//
// Environment: BENCH_ROUNDS (3), BENCH_SECONDS (8), BENCH_WARMUP_SECONDS (2), BENCH_CONNECTIONS (32),
// BENCH_APPS (hello,cpu,rack,wsgi,puma-single,gunicorn-sync), BENCH_BODIES (on; off skips the
// large-body phase), BENCH_BODY_SECONDS (4), BENCH_NGINX (auto; off, or a path), BENCH_NGINX_WORKERS
// (1), BENCH_PM2 (auto; off), BENCH_LOADGEN (wrk; or autocannon), BENCH_INSTANCES (2: app processes
// behind holdfast).
//
// Exit code: 0 when the run completed, whatever the goals say (the machine is noisy: the PASS/FAIL
// lines are for people); 1 when any request failed; 2 when the run itself failed; 130 on Ctrl-C.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative } from 'node:path';
import { findNginx, findPm2, startDirect, startHoldfast, startNginx, startPm2, type Front, type FrontName, type HoldfastFront, type NginxBinary } from './lib/fronts';
import { CpuMeter, type CpuUse } from './lib/cpu';
import { chooseLoadGenerator, type LoadGenerator, type LoadResult } from './lib/load';
import { envNumber, httpGet, mb, readRss, REPO_ROOT, RESULTS_DIR, runMain, sampleRss, sleep, type Resources } from './lib/processes';
import { fixed, median, table } from './lib/stats';
import type { FrontSummary } from './lib/summary';
import { APP_SERVER_SECTIONS, benchAppServers, DEFAULT_CONCURRENCY_FRONT, type AppServerReport, type AppServerSection, type Comparison } from './lib/servers';

const APPS: Record<string, string> = { hello: 'hello app (tiny response)', cpu: 'app with ~1 ms CPU per request' };

/** The goals of issues 6 (hand-off path), 14 (proxy path, generic path), 16 (Rack) and 17 (WSGI). */
const GOALS = {
  helloRatio: 0.54,
  cpuRatio: 1.8,
  helloP99OverDirectMs: 1,
  idleRssBytes: 80 * 1024 * 1024,
  bodiesRssBytes: 150 * 1024 * 1024,
  proxyHelloRatio: 0.65,
  singleThreadedOfOwnCluster: 0.8,
  rackOfPuma: 0.9,
  wsgiOfGunicorn: 0.9,
};

function readSettings() {
  return {
    rounds: envNumber('BENCH_ROUNDS', 3),
    seconds: envNumber('BENCH_SECONDS', 8),
    warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 2),
    connections: envNumber('BENCH_CONNECTIONS', 32),
    // App processes behind holdfast (2 as in the issue; 1 isolates holdfast's own latency from
    // two busy processes and wrk sharing 2 cores).
    instances: envNumber('BENCH_INSTANCES', 2),
    apps: (process.env.BENCH_APPS ?? ['hello', 'cpu', ...APP_SERVER_SECTIONS].join(',')).split(',').map((a) => a.trim()).filter(Boolean),
    bodies: !/^(off|0|false)$/.test(process.env.BENCH_BODIES ?? ''),
    bodySeconds: envNumber('BENCH_BODY_SECONDS', 4),
    bigBytes: 8 * 1024 * 1024,
    uploadBytes: 4 * 1024 * 1024,
  };
}

/** Read in runMain, so that a bad BENCH_* value is a one-line error like any other. */
let settings: ReturnType<typeof readSettings>;

interface RunRecord {
  round: number;
  front: FrontName;
  result: LoadResult;
  cpu: CpuUse;
  /** Peak VmRSS of the holdfast process during this run (holdfast runs only). */
  holdfastPeakRssBytes?: number;
}


interface HoldfastMemory {
  idleAfterStartRssBytes: number;
  peakUnderLoadRssBytes: number;
  idleAfterLoadRssBytes: number;
  highWaterMarkBytes: number;
  logLinesDuringLoad: number;
  requestsPerAppProcess: Array<{ pid: number; processed: number; rssBytes: number }>;
}

interface BodyRun {
  front: FrontName;
  direction: 'download' | 'upload';
  bodyBytes: number;
  result: LoadResult;
  holdfastPeakRssBytes?: number;
}

interface AppReport {
  app: string;
  title: string;
  runs: RunRecord[];
  fronts: Partial<Record<FrontName, FrontSummary>>;
  holdfast?: HoldfastMemory;
  bodies?: { runs: BodyRun[]; holdfastPeakRssBytes: number };
}

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function describeRun(r: LoadResult): string {
  const errs = r.socketErrors;
  const failed = r.failed ? `  FAILED ${r.failed} (non-2xx ${r.non2xx}, connect ${errs.connect}, read ${errs.read}, write ${errs.write}, timeout ${errs.timeout})` : '';
  return `${fixed(r.requestsPerSec, 0).padStart(7)} req/s  p50 ${fixed(r.latencyP50Ms, 2).padStart(6)} ms  p99 ${fixed(r.latencyP99Ms, 2).padStart(6)} ms${failed}`;
}

function describeCpu(c: CpuUse): string {
  const front = c.cores.front > 0 ? `front ${fixed(c.cores.front, 2)} cores ${fixed(c.usPerRequest.front, 0)} µs/req, ` : '';
  return `cpu: ${front}apps ${fixed(c.cores.apps, 2)}, load gen ${fixed(c.cores.loadGenerator, 2)}, other ${fixed(c.cores.other, 2)}`;
}

async function measure(loadgen: LoadGenerator, front: Front, seconds: number, rssOf?: HoldfastFront): Promise<{ result: LoadResult; cpu: CpuUse; peakRssBytes?: number }> {
  const sampler = rssOf ? sampleRss(rssOf.pid) : undefined;
  const meter = new CpuMeter();
  let result: LoadResult;
  try {
    result = await loadgen.run({ url: front.url('/'), connections: settings.connections, seconds });
  } catch (err) {
    sampler?.stop();
    throw err;
  }
  const cpu = meter.stop(result.requests, front.cpuParties());
  const peak = sampler?.stop().peakBytes;
  return peak === undefined ? { result, cpu } : { result, cpu, peakRssBytes: peak };
}

async function benchApp(resources: Resources, loadgen: LoadGenerator, nginx: NginxBinary | undefined, pm2: { runtime: string; version: string } | undefined, app: string): Promise<AppReport> {
  say(`\n== ${app}: ${APPS[app]} ==`);
  const fronts: Front[] = [];
  try {
    fronts.push(await startDirect(resources, app));
    const holdfast = await startHoldfast(resources, app, { instances: settings.instances });
    fronts.push(holdfast);
    // The same holdfast with every request proxied: the hand-off is measured against it in each round.
    const proxyOnly = await startHoldfast(resources, app, { handoff: false, instances: settings.instances });
    fronts.push(proxyOnly);
    if (nginx) fronts.push(await startNginx(resources, nginx, app));
    if (pm2) fronts.push(await startPm2(resources, pm2, app));
    for (const f of fronts) {
      const r = await httpGet(f.url('/'));
      if (r.status !== 200) throw new Error(`${f.label} answered ${r.status} to GET /`);
    }
    say(`started: ${fronts.map((f) => `${f.name} on :${f.port}`).join(', ')}; holdfast pid ${holdfast.pid}, app pids ${holdfast.appPids.join(', ')}`);

    await sleep(1000);
    const idleAfterStartRssBytes = readRss(holdfast.pid)?.rssBytes ?? NaN;
    say(`holdfast RSS at idle after start: ${mb(idleAfterStartRssBytes)}`);

    for (const f of fronts) {
      const w = await measure(loadgen, f, settings.warmupSeconds);
      say(`warm-up   ${f.name.padEnd(14)} ${describeRun(w.result)}`);
    }

    const logLinesBefore = holdfast.logLines();
    const runs: RunRecord[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      // Rotate who goes first, so no front always runs right after the same other one.
      const order = fronts.map((_, i) => fronts[(i + round - 1) % fronts.length]!);
      for (const f of order) {
        const m = await measure(loadgen, f, settings.seconds, f === holdfast ? holdfast : f === proxyOnly ? proxyOnly : undefined);
        const record: RunRecord = { round, front: f.name, result: m.result, cpu: m.cpu };
        if (m.peakRssBytes !== undefined) record.holdfastPeakRssBytes = m.peakRssBytes;
        runs.push(record);
        say(`round ${round}   ${f.name.padEnd(14)} ${describeRun(m.result)}${m.peakRssBytes !== undefined ? `  holdfast RSS peak ${mb(m.peakRssBytes)}` : ''}`);
        say(`                   ${describeCpu(m.cpu)}`);
      }
      const direct = runs.find((r) => r.round === round && r.front === 'direct')!.result.requestsPerSec;
      say(`round ${round}   ratios: ${fronts.filter((f) => f.name !== 'direct').map((f) => `${f.name} ${fixed(runs.find((r) => r.round === round && r.front === f.name)!.result.requestsPerSec / direct, 2)}`).join(', ')}`);
    }
    const logLinesDuringLoad = holdfast.logLines() - logLinesBefore;

    await sleep(2000);
    const idleAfterLoadRssBytes = readRss(holdfast.pid)?.rssBytes ?? NaN;
    const status = await holdfast.status().catch(() => undefined);
    const requestsPerAppProcess = (status?.groups ?? []).flatMap((g) => g.processes.map((p) => ({ pid: p.pid, processed: p.processed, rssBytes: p.rss_bytes })));
    const report: AppReport = {
      app,
      title: APPS[app]!,
      runs,
      fronts: summarize(fronts, runs),
      holdfast: {
        idleAfterStartRssBytes,
        peakUnderLoadRssBytes: Math.max(...runs.map((r) => r.holdfastPeakRssBytes ?? 0)),
        idleAfterLoadRssBytes,
        highWaterMarkBytes: readRss(holdfast.pid)?.hwmBytes ?? NaN,
        logLinesDuringLoad,
        requestsPerAppProcess,
      },
    };
    say(`holdfast requests per app process: ${requestsPerAppProcess.map((p) => `pid ${p.pid}: ${p.processed}`).join(', ') || 'n/a'}`);
    if (logLinesDuringLoad > 0) say(`note: holdfast wrote ${logLinesDuringLoad} log lines during the measured runs`);

    if (app === 'hello' && settings.bodies) report.bodies = await benchBodies(loadgen, fronts[0]!, [holdfast, proxyOnly]);
    return report;
  } finally {
    for (const f of fronts.reverse()) await f.stop();
  }
}

/** Large bodies both ways, direct and through holdfast: throughput, and holdfast's RSS meanwhile. */
async function benchBodies(loadgen: LoadGenerator, direct: Front, holdfasts: readonly HoldfastFront[]): Promise<NonNullable<AppReport['bodies']>> {
  say(`-- large bodies: GET /big (${mb(settings.bigBytes)} responses), POST /upload (${mb(settings.uploadBytes)} requests), ${settings.connections} connections --`);
  const runs: BodyRun[] = [];
  for (const direction of ['download', 'upload'] as const) {
    for (const f of [direct, ...holdfasts]) {
      const h = holdfasts.find((x) => x === f);
      const sampler = h ? sampleRss(h.pid) : undefined;
      let result: LoadResult;
      try {
        result = await loadgen.run({
          url: f.url(direction === 'download' ? '/big' : '/upload'),
          connections: settings.connections,
          seconds: settings.bodySeconds,
          timeoutSeconds: 30,
          ...(direction === 'upload' ? { postBytes: settings.uploadBytes } : {}),
        });
      } catch (err) {
        sampler?.stop();
        throw err;
      }
      const peak = sampler?.stop().peakBytes;
      const run: BodyRun = { front: f.name, direction, bodyBytes: direction === 'download' ? settings.bigBytes : settings.uploadBytes, result };
      if (peak !== undefined) run.holdfastPeakRssBytes = peak;
      runs.push(run);
      const mbps = direction === 'download' ? result.bytesPerSec : result.requestsPerSec * settings.uploadBytes;
      say(`${direction.padEnd(8)}  ${f.name.padEnd(14)} ${fixed(result.requestsPerSec, 1).padStart(7)} req/s  ${fixed(mbps / 1024 / 1024, 0).padStart(5)} MB/s  p99 ${fixed(result.latencyP99Ms, 0)} ms${result.failed ? `  FAILED ${result.failed}` : ''}${peak !== undefined ? `  holdfast RSS peak ${mb(peak)}` : ''}`);
    }
  }
  return { runs, holdfastPeakRssBytes: Math.max(...runs.map((r) => r.holdfastPeakRssBytes ?? 0)) };
}

function summarize(fronts: readonly Front[], runs: readonly RunRecord[]): Partial<Record<FrontName, FrontSummary>> {
  const out: Partial<Record<FrontName, FrontSummary>> = {};
  const directOf = (round: number) => runs.find((r) => r.round === round && r.front === 'direct')!.result;
  for (const f of fronts) {
    const mine = runs.filter((r) => r.front === f.name);
    const perRound = mine.map((r) => ({
      round: r.round,
      requestsPerSec: r.result.requestsPerSec,
      ratio: r.result.requestsPerSec / directOf(r.round).requestsPerSec,
      latencyP50Ms: r.result.latencyP50Ms,
      latencyP99Ms: r.result.latencyP99Ms,
      failed: r.result.failed,
      frontUsPerRequest: r.cpu.usPerRequest.front,
      otherCores: r.cpu.cores.other,
    }));
    out[f.name] = {
      label: f.label,
      requestsPerSec: median(perRound.map((r) => r.requestsPerSec)),
      ratio: median(perRound.map((r) => r.ratio)),
      latencyP50Ms: median(perRound.map((r) => r.latencyP50Ms)),
      latencyP99Ms: median(perRound.map((r) => r.latencyP99Ms)),
      p99OverDirectMs: median(mine.map((r) => r.result.latencyP99Ms - directOf(r.round).latencyP99Ms)),
      frontUsPerRequest: median(mine.map((r) => r.cpu.usPerRequest.front)),
      appUsPerRequest: median(mine.map((r) => r.cpu.usPerRequest.apps)),
      failed: perRound.reduce((n, r) => n + r.failed, 0),
      perRound,
    };
  }
  return out;
}

function printSummary(reports: readonly AppReport[], loadgen: LoadGenerator): void {
  const names: FrontName[] = ['direct', 'holdfast', 'holdfast-proxy', 'nginx', 'pm2'];
  const present = names.filter((n) => reports.some((r) => r.fronts[n]));
  const labelOf = (n: FrontName) => reports.map((r) => r.fronts[n]?.label).find(Boolean) ?? n;

  say(`\n== medians of ${settings.rounds} interleaved rounds (${loadgen.name === 'wrk' ? 'wrk -t1' : 'autocannon'} -c${settings.connections} -d${settings.seconds}s), ratio to direct in the same round ==`);
  say(table([['front', ...reports.map((r) => r.title)], ...present.map((n) => [labelOf(n), ...reports.map((r) => fixed(r.fronts[n]?.ratio ?? NaN, 2))])]));

  for (const r of reports) {
    say(`\n${r.app}: req/s, latency (ms) and failed requests`);
    say(
      table([
        ['front', 'req/s', 'ratio', 'p50', 'p99', 'p99 - direct', 'front µs/req', 'app µs/req', 'failed'],
        ...present
          .filter((n) => r.fronts[n])
          .map((n) => {
            const s = r.fronts[n]!;
            return [s.label, fixed(s.requestsPerSec, 0), fixed(s.ratio, 2), fixed(s.latencyP50Ms, 2), fixed(s.latencyP99Ms, 2), n === 'direct' ? '' : `${s.p99OverDirectMs >= 0 ? '+' : ''}${fixed(s.p99OverDirectMs, 2)}`, n === 'direct' ? '' : fixed(s.frontUsPerRequest, 0), fixed(s.appUsPerRequest, 0), String(s.failed)];
          }),
      ]),
    );
    if (r.holdfast) {
      const h = r.holdfast;
      say(`holdfast RSS: idle after start ${mb(h.idleAfterStartRssBytes)}, peak under load ${mb(h.peakUnderLoadRssBytes)}, idle after load ${mb(h.idleAfterLoadRssBytes)}${r.bodies ? `, peak streaming large bodies ${mb(r.bodies.holdfastPeakRssBytes)}` : ''}`);
    }
  }
}

/** Other processes' CPU during the measured runs: how much to trust this run. */
function noiseLine(reports: readonly AppReport[]): string {
  const other = reports.flatMap((r) => r.runs.map((x) => x.cpu.cores.other));
  const max = Math.max(...other);
  const text = `other processes on the machine used ${fixed(median(other), 2)} cores (median; max ${fixed(max, 2)}) during the measured runs`;
  return max > 0.2 ? `${text}: the machine was not quiet, treat the figures with care` : text;
}

function isComparison(c: AppServerReport[keyof AppServerReport]): c is Comparison {
  return c !== undefined && 'fronts' in c;
}

function goalLines(reports: readonly AppReport[], servers: AppServerReport, failed: number): string[] {
  const lines: string[] = [];
  const hello = reports.find((r) => r.app === 'hello');
  const cpu = reports.find((r) => r.app === 'cpu');
  const check = (ok: boolean | undefined, text: string) => lines.push(`${ok === undefined ? 'SKIP' : ok ? 'PASS' : 'FAIL'}  ${text}`);
  const hr = hello?.fronts.holdfast?.ratio;
  check(hr === undefined ? undefined : hr >= GOALS.helloRatio, `hello: holdfast ${fixed(hr ?? NaN, 2)} x direct (goal >= ${GOALS.helloRatio})`);
  const cr = cpu?.fronts.holdfast?.ratio;
  check(cr === undefined ? undefined : cr >= GOALS.cpuRatio, `cpu: holdfast ${fixed(cr ?? NaN, 2)} x direct (goal >= ${fixed(GOALS.cpuRatio, 2)})`);
  const dp = hello?.fronts.holdfast?.p99OverDirectMs;
  check(dp === undefined ? undefined : dp <= GOALS.helloP99OverDirectMs, `hello: p99 through holdfast ${fixed(dp ?? NaN, 2)} ms above direct (goal <= ${GOALS.helloP99OverDirectMs} ms)`);
  const idle = reports.map((r) => r.holdfast?.idleAfterStartRssBytes ?? 0);
  const idleMax = idle.length ? Math.max(...idle) : undefined;
  check(idleMax === undefined ? undefined : idleMax < GOALS.idleRssBytes, `holdfast RSS at idle ${mb(idleMax ?? NaN)} (goal < ${mb(GOALS.idleRssBytes)})`);
  const bodies = hello?.bodies?.holdfastPeakRssBytes;
  check(bodies === undefined ? undefined : bodies < GOALS.bodiesRssBytes, `holdfast RSS streaming large bodies ${mb(bodies ?? NaN)} (goal < ${mb(GOALS.bodiesRssBytes)})`);
  // Issue 14: the proxy path.
  const pr = hello?.fronts['holdfast-proxy'];
  const ng = hello?.fronts.nginx;
  check(pr === undefined ? undefined : pr.ratio >= GOALS.proxyHelloRatio, `hello: holdfast proxy path ${fixed(pr?.ratio ?? NaN, 2)} x direct (goal >= ${GOALS.proxyHelloRatio})`);
  check(pr === undefined || ng === undefined ? undefined : pr.ratio > ng.ratio, `hello: proxy path ${fixed(pr?.ratio ?? NaN, 2)} vs nginx ${fixed(ng?.ratio ?? NaN, 2)} (goal: above nginx)`);
  check(pr === undefined || ng === undefined ? undefined : pr.latencyP99Ms <= ng.latencyP99Ms, `hello: proxy path p99 ${fixed(pr?.latencyP99Ms ?? NaN, 2)} ms vs nginx ${fixed(ng?.latencyP99Ms ?? NaN, 2)} ms (goal: no worse)`);
  const cpr = cpu?.fronts['holdfast-proxy'];
  const cng = cpu?.fronts.nginx;
  check(cpr === undefined || cng === undefined ? undefined : cpr.ratio >= cng.ratio, `cpu: proxy path ${fixed(cpr?.ratio ?? NaN, 2)} vs nginx ${fixed(cng?.ratio ?? NaN, 2)} (goal: at least nginx's)`);
  for (const [app, r] of [['hello', hello], ['cpu', cpu]] as const) {
    const h = r?.fronts.holdfast;
    const p = r?.fronts.pm2;
    check(h === undefined || p === undefined ? undefined : h.ratio > p.ratio, `${app}: hand-off ${fixed(h?.ratio ?? NaN, 2)} vs PM2 cluster ${fixed(p?.ratio ?? NaN, 2)} (goal: ahead)`);
  }
  const serverGoal = (c: AppServerReport[keyof AppServerReport], name: string, goal: number, text: string) => {
    if (!isComparison(c)) return check(undefined, `${text}: ${c?.skipped.join('; ') || 'not in BENCH_APPS'}`);
    const h = c.fronts['holdfast']!;
    check(h.ratio >= goal && h.timeouts === 0, `${text}: holdfast ${fixed(h.ratio, 2)} x ${name}, ${h.timeouts} timeouts (goal >= ${goal}, no timeouts)`);
    const passenger = c.fronts['passenger'];
    const nginx = c.fronts['nginx'];
    // What the best-known reverse proxy makes of the same single-worker servers, for scale (no goal).
    if (nginx !== undefined) say(`      nginx in front of the same 2 processes: ${fixed(nginx.ratio, 2)} x ${name}; holdfast ${fixed(h.ratio, 2)}`);
    // The same servers with holdfast's default concurrency (0, no limit), for scale (no goal).
    const c0 = c.fronts[DEFAULT_CONCURRENCY_FRONT];
    if (c0 !== undefined) say(`      holdfast with the default concurrency 0: ${fixed(c0.ratio, 2)} x ${name}, p99 ${fixed(c0.latencyP99Ms, 1)} ms, ${c0.timeouts} timeouts`);
    if (c === servers.rack || c === servers.wsgi) {
      check(passenger === undefined ? undefined : h.requestsPerSec > passenger.requestsPerSec, `${text}: holdfast ${fixed(h.requestsPerSec, 0)} req/s vs Passenger ${fixed(passenger?.requestsPerSec ?? NaN, 0)} (goal: ahead)`);
    }
  };
  serverGoal(servers.pumaSingle, 'puma -w 2 -t 1:1', GOALS.singleThreadedOfOwnCluster, 'generic path + puma -t 1:1');
  serverGoal(servers.gunicornSync, 'gunicorn -w 2', GOALS.singleThreadedOfOwnCluster, 'generic path + gunicorn sync');
  serverGoal(servers.rack, 'puma -w 2 -t 1:1', GOALS.rackOfPuma, 'rack');
  serverGoal(servers.wsgi, 'gunicorn -w 2', GOALS.wsgiOfGunicorn, 'wsgi');
  check(failed === 0, `failed requests: ${failed} (goal 0)`);
  return lines;
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return 'unknown';
  }
}

runMain(async (resources) => {
  settings = readSettings();
  const startedAt = new Date();
  const known = [...Object.keys(APPS), ...APP_SERVER_SECTIONS];
  for (const app of settings.apps) if (!known.includes(app)) throw new Error(`BENCH_APPS: no bundled app or comparison "${app}" (there are: ${known.join(', ')})`);
  const scratch = resources.tempDir('hf-bench-');
  const loadgen = chooseLoadGenerator(resources, scratch, say);
  const found = findNginx(say);
  const nginx = 'path' in found ? found : undefined;
  const pm2Found = settings.apps.some((a) => APPS[a]) ? findPm2(say) : { skipped: 'no Node app in BENCH_APPS' };
  const pm2 = 'runtime' in pm2Found ? pm2Found : undefined;

  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    loadAverageAtStart: os.loadavg(),
  };
  const versions = { node: process.version, loadGenerator: `${loadgen.name} ${loadgen.version}`, nginx: nginx ? `${nginx.version} (${nginx.source})` : null };
  const commit = git(['rev-parse', '--short', 'HEAD']);
  const dirty = git(['status', '--porcelain', '--', 'src', 'bench', 'bin']) !== '';
  say(`holdfast benchmark — ${startedAt.toISOString()}, commit ${commit}${dirty ? ' (with uncommitted changes)' : ''}`);
  say(`machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.kernel}, load average ${machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}`);
  say(`node ${process.version}; load generator: ${loadgen.why}, version ${loadgen.version}`);
  say(`nginx: ${nginx ? `${nginx.version} (${nginx.source}), ${Number(process.env.BENCH_NGINX_WORKERS) || 1} worker` : `skipped (${'skipped' in found ? found.skipped : ''})`}`);
  say(`PM2: ${pm2 ? `${pm2.version}, cluster mode with 2 workers` : `skipped (${'skipped' in pm2Found ? pm2Found.skipped : ''})`}`);
  say(`plan: apps ${settings.apps.join(', ')}; ${settings.rounds} rounds of ${settings.seconds} s per front, ${settings.connections} connections, after a ${settings.warmupSeconds} s warm-up`);
  if (machine.cpus !== 2) say(`note: the goals of issue 6 were set on a 2-core machine; this one has ${machine.cpus}`);

  const reports: AppReport[] = [];
  for (const app of settings.apps) if (APPS[app]) reports.push(await benchApp(resources, loadgen, nginx, pm2, app));
  const sections = new Set(settings.apps.filter((a): a is AppServerSection => (APP_SERVER_SECTIONS as readonly string[]).includes(a)));
  const servers = await benchAppServers(resources, loadgen, settings, sections, say);
  const serverFailed = Object.values(servers).reduce((n: number, c) => n + (isComparison(c) ? Object.values(c.fronts).reduce((m, f) => m + f.failed, 0) : 0), 0);

  const failed =
    reports.reduce((n, r) => n + r.runs.reduce((m, x) => m + x.result.failed, 0) + (r.bodies?.runs.reduce((m, x) => m + x.result.failed, 0) ?? 0), 0) + serverFailed;
  printSummary(reports, loadgen);
  const goals = goalLines(reports, servers, failed);
  const noise = noiseLine(reports);
  say(`\n${noise}`);
  say('');
  for (const line of goals) say(line);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const document = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    commit,
    uncommittedChanges: dirty,
    command: 'npm run bench',
    settings,
    machine,
    versions,
    loadGenerator: { name: loadgen.name, version: loadgen.version, why: loadgen.why },
    nginx: nginx ?? { skipped: 'skipped' in found ? found.skipped : '' },
    goals: GOALS,
    goalLines: goals,
    noise,
    failedRequests: failed,
    apps: reports,
    appServers: servers,
  };
  writeFileSync(file, JSON.stringify(document, null, 2) + '\n');
  say(`\nresults: ${relative(process.cwd(), file) || file}`);
  return failed > 0 ? 1 : 0;
});
