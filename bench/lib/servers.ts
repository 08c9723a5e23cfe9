// holdfast against the app servers its users come from, in one `npm run bench` run (issues 14, 16,
// 17): the same hello app, 2 processes each, interleaved rounds of the same wrk load, every figure a
// ratio to the server's own 2-worker mode in the same round.
//
// - rack: holdfast's Rack loader (smart spawning, one request at a time) vs `puma -w 2 -t 1:1` and
//   Passenger Standalone (builtin engine);
// - wsgi: holdfast's WSGI loader vs `gunicorn -w 2` (sync workers) and Passenger;
// - single-threaded servers behind holdfast's generic path (`app_start_command`, `--concurrency 1`,
//   2 processes): `puma -t 1:1` vs `puma -w 2 -t 1:1`, and `gunicorn -w 1` (sync) vs `gunicorn -w 2`,
//   with nginx in front of the same two single-worker servers alongside, for scale.
//
// What is missing is installed from Debian (puma, gunicorn, passenger) when apt-get can; otherwise
// that front is skipped and the output says why.

import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { CpuMeter, type CpuParties } from './cpu';
import { aptInstall, which, type LoadGenerator } from './load';
import { findNginx, launchHoldfast, startNginxOver } from './fronts';
import { APPS_DIR, childrenOf, freePort, type Resources, sleep, waitForHttp } from './processes';
import { fixed, median, table } from './stats';

/** Debian's python3, with Debian's gunicorn, Flask and Django (the first python3 on PATH may be another). */
export const SYSTEM_PYTHON = '/usr/bin/python3';
const START_TIMEOUT_MS = 120_000;

export interface ServerFront {
  readonly name: string;
  readonly label: string;
  url(path?: string): string;
  cpuParties(): CpuParties;
  stop(): Promise<void>;
}

export interface ServerRun {
  round: number;
  front: string;
  requestsPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  failed: number;
  timeouts: number;
  frontUsPerRequest: number;
  appUsPerRequest: number;
}

export interface Comparison {
  title: string;
  baseline: string;
  runs: ServerRun[];
  /** Per front: median req/s, median ratio to the baseline of the same round, failures. */
  fronts: Record<string, { label: string; requestsPerSec: number; ratio: number; latencyP99Ms: number; failed: number; timeouts: number }>;
  skipped: string[];
}

export interface ComparisonSettings {
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  connections: number;
}

/** A process and all its descendants (a shell, a master, its workers). */
function descendantsOf(pid: number): number[] {
  return [pid, ...childrenOf(pid).flatMap(descendantsOf)];
}

function urlOf(port: number, path = '/'): string {
  return `http://127.0.0.1:${port}${path}`;
}

// ---- holdfast on any app dir ----

export interface HoldfastRun extends ServerFront {
  readonly child: ChildProcess;
  readonly port: number;
  /** spawn_ms of each ready process, in order. */
  readonly spawnMs: number[];
  readonly appPids: number[];
}

/** `holdfast start DIR ...args` (fronts.ts launchHoldfast) as a front of a comparison. */
export async function startHoldfastOn(resources: Resources, appDir: string, args: readonly string[], processes: number, name = 'holdfast', label = 'holdfast'): Promise<HoldfastRun> {
  const run = await launchHoldfast(resources, appDir, args, processes, { name: `bench-${name}-${process.pid}` });
  return {
    name,
    label,
    child: run.child,
    port: run.port,
    spawnMs: run.spawnMs,
    appPids: run.appPids,
    url: (p) => urlOf(run.port, p),
    // A generic app's command may be a shell that starts the server: count descendants as apps.
    cpuParties: () => ({ front: [run.child.pid!], apps: run.appPids.flatMap(descendantsOf) }),
    stop: run.stop,
  };
}

// ---- the servers' own cluster modes ----

function ensure(command: string, pkg: string, say: (line: string) => void): string | undefined {
  return which(command) ?? (aptInstall(pkg, say) ? which(command) : undefined);
}

async function startServer(
  resources: Resources,
  spec: { name: string; label: string; command: string; args: (port: number) => string[]; cwd: string; settleMs: number; graceMs?: number },
): Promise<ServerFront> {
  const port = await freePort();
  const child = resources.spawn(spec.command, spec.args(port), { cwd: spec.cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForHttp(urlOf(port), START_TIMEOUT_MS, child);
  await sleep(spec.settleMs); // every worker booted
  return {
    name: spec.name,
    label: spec.label,
    url: (p) => urlOf(port, p),
    cpuParties: () => ({ front: [], apps: descendantsOf(child.pid!) }),
    stop: () => resources.stop(child, 'SIGTERM', spec.graceMs ?? 10_000),
  };
}

/**
 * nginx in front of two single-worker servers (the ones holdfast's generic path runs): what the
 * best-known reverse proxy makes of the same processes, in the same rounds.
 */
async function startNginxOverTwo(resources: Resources, say: (line: string) => void, name: string, label: string, server: (port: number) => { command: string; args: string[]; cwd: string }): Promise<ServerFront | string> {
  const found = findNginx(say);
  if (!('path' in found)) return `nginx: ${found.skipped}`;
  const upstreams: Array<{ port: number; child: ChildProcess }> = [];
  try {
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const spec = server(port);
      const child = resources.spawn(spec.command, spec.args, { cwd: spec.cwd, stdio: ['ignore', 'ignore', 'inherit'] });
      upstreams.push({ port, child });
      await waitForHttp(urlOf(port), START_TIMEOUT_MS, child);
    }
    const front = await startNginxOver(resources, found, upstreams.map((u) => u.port));
    return {
      name,
      label: `${label} (nginx ${found.version}, least_conn, keep-alive upstream)`,
      url: (p) => urlOf(front.port, p),
      cpuParties: () => ({ front: [front.pid], apps: upstreams.flatMap((u) => descendantsOf(u.child.pid!)) }),
      stop: async () => {
        await front.stop();
        await Promise.all(upstreams.map((u) => resources.stop(u.child, 'SIGTERM', 10_000)));
      },
    };
  } catch (error) {
    await Promise.all(upstreams.map((u) => resources.stop(u.child, 'SIGTERM', 10_000)));
    throw error;
  }
}

export async function startPuma(resources: Resources, appDir: string, say: (line: string) => void): Promise<ServerFront | string> {
  const puma = ensure('puma', 'puma', say);
  if (!puma) return 'puma is not installed and apt-get could not install it';
  return startServer(resources, {
    name: 'puma',
    label: 'puma -w 2 -t 1:1',
    command: puma,
    args: (port) => ['-w', '2', '-t', '1:1', '-e', 'production', '-b', `tcp://127.0.0.1:${port}`, join(appDir, 'config.ru')],
    cwd: appDir,
    settleMs: 1500,
  });
}

export async function startGunicorn(resources: Resources, appDir: string, say: (line: string) => void): Promise<ServerFront | string> {
  if (!ensure('gunicorn', 'gunicorn', say) || !existsSync(SYSTEM_PYTHON)) return 'gunicorn is not installed and apt-get could not install it';
  return startServer(resources, {
    name: 'gunicorn',
    label: 'gunicorn -w 2 (sync)',
    command: SYSTEM_PYTHON,
    args: (port) => ['-m', 'gunicorn', '-w', '2', '-b', `127.0.0.1:${port}`, '--chdir', appDir, '--log-level', 'warning', 'passenger_wsgi:application'],
    cwd: appDir,
    settleMs: 1000,
  });
}

export async function startPassenger(resources: Resources, appDir: string, say: (line: string) => void, extra: string[] = []): Promise<ServerFront | string> {
  const passenger = ensure('passenger', 'passenger', say);
  if (!passenger) return 'Passenger is not installed and apt-get could not install it';
  // Passenger writes into the app dir (log/, tmp/): a copy of its own.
  const work = resources.tempDir('hf-bench-passenger-');
  cpSync(appDir, work, { recursive: true });
  return startServer(resources, {
    name: 'passenger',
    label: 'Passenger 6 Standalone (builtin engine), 2 processes',
    command: passenger,
    args: (port) => [
      'start', '--engine', 'builtin', '--address', '127.0.0.1', '--port', String(port), '--min-instances', '2', '--max-pool-size', '2', '--environment', 'production',
      '--log-file', join(work, 'passenger.log'), '--pid-file', join(work, 'passenger.pid'), '--disable-anonymous-telemetry', '--disable-security-update-check', ...extra,
    ],
    cwd: work,
    settleMs: 2500,
    graceMs: 20_000,
  });
}

// ---- the comparison ----

/** Interleaved rounds of the same load on each front; ratios to `baseline` in the same round. */
export async function compare(title: string, fronts: readonly ServerFront[], baseline: string, skipped: string[], loadgen: LoadGenerator, settings: ComparisonSettings, say: (line: string) => void): Promise<Comparison> {
  say(`\n== ${title} ==`);
  for (const s of skipped) say(`skipped: ${s}`);
  for (const f of fronts) {
    const w = await loadgen.run({ url: f.url('/'), connections: settings.connections, seconds: settings.warmupSeconds });
    say(`warm-up   ${f.name.padEnd(18)} ${fixed(w.requestsPerSec, 0).padStart(7)} req/s`);
  }
  const runs: ServerRun[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    const order = fronts.map((_, i) => fronts[(i + round - 1) % fronts.length]!);
    for (const f of order) {
      const meter = new CpuMeter();
      const r = await loadgen.run({ url: f.url('/'), connections: settings.connections, seconds: settings.seconds });
      const cpu = meter.stop(r.requests, f.cpuParties());
      runs.push({
        round,
        front: f.name,
        requestsPerSec: r.requestsPerSec,
        latencyP50Ms: r.latencyP50Ms,
        latencyP99Ms: r.latencyP99Ms,
        failed: r.failed,
        timeouts: r.socketErrors.timeout,
        frontUsPerRequest: cpu.usPerRequest.front,
        appUsPerRequest: cpu.usPerRequest.apps,
      });
      say(
        `round ${round}   ${f.name.padEnd(18)} ${fixed(r.requestsPerSec, 0).padStart(7)} req/s  p50 ${fixed(r.latencyP50Ms, 2)} ms  p99 ${fixed(r.latencyP99Ms, 2)} ms` +
          `  cpu µs/req: front ${fixed(cpu.usPerRequest.front, 0)}, apps ${fixed(cpu.usPerRequest.apps, 0)}${r.failed ? `  FAILED ${r.failed} (timeouts ${r.socketErrors.timeout})` : ''}`,
      );
    }
  }
  const of = (round: number, front: string) => runs.find((r) => r.round === round && r.front === front)!;
  const summary: Comparison['fronts'] = {};
  for (const f of fronts) {
    const mine = runs.filter((r) => r.front === f.name);
    summary[f.name] = {
      label: f.label,
      requestsPerSec: median(mine.map((r) => r.requestsPerSec)),
      ratio: median(mine.map((r) => r.requestsPerSec / of(r.round, baseline).requestsPerSec)),
      latencyP99Ms: median(mine.map((r) => r.latencyP99Ms)),
      failed: mine.reduce((n, r) => n + r.failed, 0),
      timeouts: mine.reduce((n, r) => n + r.timeouts, 0),
    };
  }
  say(
    table([
      ['front', 'req/s', `ratio to ${baseline}`, 'p99 ms', 'failed', 'timeouts'],
      ...fronts.map((f) => {
        const s = summary[f.name]!;
        return [s.label, fixed(s.requestsPerSec, 0), fixed(s.ratio, 2), fixed(s.latencyP99Ms, 2), String(s.failed), String(s.timeouts)];
      }),
    ]),
  );
  return { title, baseline, runs, fronts: summary, skipped };
}

async function startAll(starts: ReadonlyArray<() => Promise<ServerFront | string>>): Promise<{ fronts: ServerFront[]; skipped: string[] }> {
  const fronts: ServerFront[] = [];
  const skipped: string[] = [];
  try {
    for (const start of starts) {
      const f = await start();
      if (typeof f === 'string') skipped.push(f);
      else fronts.push(f);
    }
  } catch (error) {
    for (const f of fronts.reverse()) await f.stop();
    throw error;
  }
  return { fronts, skipped };
}

async function section(
  title: string,
  baseline: string,
  starts: ReadonlyArray<() => Promise<ServerFront | string>>,
  loadgen: LoadGenerator,
  settings: ComparisonSettings,
  say: (line: string) => void,
): Promise<Comparison | { title: string; skipped: string[] }> {
  const { fronts, skipped } = await startAll(starts);
  try {
    if (!fronts.some((f) => f.name === baseline) || fronts.length < 2) {
      for (const s of skipped) say(`skipped ${title}: ${s}`);
      return { title, skipped };
    }
    return await compare(title, fronts, baseline, skipped, loadgen, settings, say);
  } finally {
    for (const f of [...fronts].reverse()) await f.stop();
  }
}

/** holdfast with the default concurrency (0: no limit) in front of single-threaded servers. */
export const DEFAULT_CONCURRENCY_FRONT = 'holdfast-c0';

/**
 * holdfast's generic path in front of 2 single-threaded servers started with `command`: with
 * concurrency 1 (front 'holdfast', the one the goals read) and with the default 0. A falsy command:
 * `missing` instead (the server is not installed).
 */
function holdfastInFrontOf(resources: Resources, appDir: string, command: string | false | undefined, server: string, missing: string): Array<() => Promise<ServerFront | string>> {
  return [
    { concurrency: ['--concurrency', '1'], name: 'holdfast', label: `holdfast generic, 2 x ${server}` },
    { concurrency: [], name: DEFAULT_CONCURRENCY_FRONT, label: `holdfast generic, 2 x ${server}, concurrency 0` },
  ].map(
    (front) => () =>
      command ? startHoldfastOn(resources, appDir, ['--min-instances', '2', '--max-pool-size', '2', ...front.concurrency, '--app-start-command', command], 2, front.name, front.label) : Promise.resolve(missing),
  );
}

export interface AppServerReport {
  rack?: Comparison | { title: string; skipped: string[] };
  wsgi?: Comparison | { title: string; skipped: string[] };
  pumaSingle?: Comparison | { title: string; skipped: string[] };
  gunicornSync?: Comparison | { title: string; skipped: string[] };
}

export const APP_SERVER_SECTIONS = ['rack', 'wsgi', 'puma-single', 'gunicorn-sync'] as const;
export type AppServerSection = (typeof APP_SERVER_SECTIONS)[number];

/** The four comparisons, each skipped when its baseline server cannot run here. */
export async function benchAppServers(resources: Resources, loadgen: LoadGenerator, settings: ComparisonSettings, sections: ReadonlySet<AppServerSection>, say: (line: string) => void): Promise<AppServerReport> {
  const rackDir = join(APPS_DIR, 'rack-hello');
  const wsgiDir = join(APPS_DIR, 'wsgi-hello');
  const report: AppServerReport = {};
  const holdfastRack = () => startHoldfastOn(resources, rackDir, ['--min-instances', '2', '--max-pool-size', '2'], 2, 'holdfast', 'holdfast (Rack loader, smart spawning), 2 processes');
  const holdfastWsgi = () => startHoldfastOn(resources, wsgiDir, ['--min-instances', '2', '--max-pool-size', '2', '--python', SYSTEM_PYTHON], 2, 'holdfast', 'holdfast (WSGI loader), 2 processes');
  if (sections.has('rack')) {
    report.rack = await section('rack: Rack hello, 2 processes', 'puma', [holdfastRack, () => startPuma(resources, rackDir, say), () => startPassenger(resources, rackDir, say)], loadgen, settings, say);
  }
  if (sections.has('wsgi')) {
    report.wsgi = await section(
      'wsgi: WSGI hello, 2 processes',
      'gunicorn',
      [holdfastWsgi, () => startGunicorn(resources, wsgiDir, say), () => startPassenger(resources, wsgiDir, say, ['--python', SYSTEM_PYTHON])],
      loadgen,
      settings,
      say,
    );
  }
  if (sections.has('puma-single')) {
    const puma = ensure('puma', 'puma', say);
    report.pumaSingle = await section(
      'generic path: holdfast + puma -t 1:1 (app_start_command, 2 processes, concurrency 1 and the default 0) vs puma -w 2 -t 1:1',
      'puma',
      [
        ...holdfastInFrontOf(resources, rackDir, puma && `${puma} -t 1:1 -e production -b tcp://127.0.0.1:$PORT config.ru`, 'puma -t 1:1', 'puma is not installed'),
        () => startPuma(resources, rackDir, say),
        () =>
          puma
            ? startNginxOverTwo(resources, say, 'nginx', 'nginx, 2 x puma -t 1:1', (port) => ({ command: puma, args: ['-t', '1:1', '-e', 'production', '-b', `tcp://127.0.0.1:${port}`, 'config.ru'], cwd: rackDir }))
            : Promise.resolve('puma is not installed'),
      ],
      loadgen,
      settings,
      say,
    );
  }
  if (sections.has('gunicorn-sync')) {
    const gunicorn = ensure('gunicorn', 'gunicorn', say);
    report.gunicornSync = await section(
      'generic path: holdfast + gunicorn -w 1 sync (app_start_command, 2 processes, concurrency 1 and the default 0) vs gunicorn -w 2',
      'gunicorn',
      [
        ...holdfastInFrontOf(
          resources,
          wsgiDir,
          gunicorn && `${SYSTEM_PYTHON} -m gunicorn -w 1 -b 127.0.0.1:$PORT --log-level warning passenger_wsgi:application`,
          'gunicorn -w 1 (sync)',
          'gunicorn is not installed',
        ),
        () => startGunicorn(resources, wsgiDir, say),
        () =>
          gunicorn
            ? startNginxOverTwo(resources, say, 'nginx', 'nginx, 2 x gunicorn -w 1 (sync)', (port) => ({
                command: SYSTEM_PYTHON,
                args: ['-m', 'gunicorn', '-w', '1', '-b', `127.0.0.1:${port}`, '--log-level', 'warning', 'passenger_wsgi:application'],
                cwd: wsgiDir,
              }))
            : Promise.resolve('gunicorn is not installed'),
      ],
      loadgen,
      settings,
      say,
    );
  }
  return report;
}
