// The WSGI part of `npm run bench` (issue 17): the same Python hello app (bench/apps/wsgi-hello)
// behind holdfast with 2 processes and behind `gunicorn -w 2` (sync workers), both on Debian's
// python3, in interleaved rounds of the same wrk load. Passenger is measured when a
// `passenger` binary is on PATH; it is not installed here, so that figure is skipped.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuMeter } from './cpu';
import { startHoldfast, type Front } from './fronts';
import { which, type LoadGenerator, type LoadResult } from './load';
import { APPS_DIR, freePort, type Resources, waitForHttp } from './processes';
import { fixed, median } from './stats';

export const WSGI_PYTHON = '/usr/bin/python3';
const APP = 'wsgi-hello';
const START_TIMEOUT_MS = 60_000;

export interface WsgiRun {
  round: number;
  front: 'holdfast' | 'gunicorn';
  requestsPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  failed: number;
  frontUsPerRequest: number;
  appUsPerRequest: number;
}

export interface WsgiReport {
  runs: WsgiRun[];
  /** Median over rounds of holdfast's req/s over gunicorn's in the same round. */
  ratioToGunicorn: number;
  holdfastRequestsPerSec: number;
  gunicornRequestsPerSec: number;
  failed: number;
  passenger: string;
}

/** Why the WSGI part cannot run here, or undefined when it can. */
export function wsgiUnavailable(): string | undefined {
  if (!existsSync(WSGI_PYTHON)) return `${WSGI_PYTHON} is not installed`;
  if (!which('gunicorn')) return 'gunicorn is not installed (apt-get install gunicorn)';
  return undefined;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function startGunicorn(resources: Resources): Promise<Front> {
  const port = await freePort();
  const child = resources.spawn(WSGI_PYTHON, ['-m', 'gunicorn', '-w', '2', '-b', `127.0.0.1:${port}`, '--chdir', join(APPS_DIR, APP), '--log-level', 'warning', 'passenger_wsgi:application'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitForHttp(`http://127.0.0.1:${port}/`, START_TIMEOUT_MS, child);
  return {
    name: 'direct',
    label: 'gunicorn -w 2 (sync)',
    port,
    url: (p = '/') => `http://127.0.0.1:${port}${p}`,
    // The master and its workers: CpuMeter expands the front's descendants, not the apps'.
    cpuParties: () => ({ front: [], apps: [child.pid!, ...childrenOf(child.pid!)] }),
    stop: () => resources.stop(child),
  };
}

export async function benchWsgi(
  resources: Resources,
  loadgen: LoadGenerator,
  settings: { rounds: number; seconds: number; warmupSeconds: number; connections: number; instances: number },
  say: (line: string) => void,
): Promise<WsgiReport> {
  say(`\n== wsgi: Python hello app, holdfast (${settings.instances} processes) vs gunicorn -w 2, ${WSGI_PYTHON} ==`);
  const gunicorn = await startGunicorn(resources);
  const holdfast = await startHoldfast(resources, APP, { instances: settings.instances, extraArgs: ['--python', WSGI_PYTHON] }).catch(async (err: unknown) => {
    await gunicorn.stop();
    throw err;
  });
  const fronts: Array<[WsgiRun['front'], Front]> = [
    ['holdfast', holdfast],
    ['gunicorn', gunicorn],
  ];
  try {
    for (const [name, f] of fronts) {
      const w = await loadgen.run({ url: f.url('/'), connections: settings.connections, seconds: settings.warmupSeconds });
      say(`warm-up   ${name.padEnd(10)} ${fixed(w.requestsPerSec, 0).padStart(7)} req/s`);
    }
    const runs: WsgiRun[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      const order = round % 2 === 1 ? fronts : [...fronts].reverse();
      for (const [name, f] of order) {
        const meter = new CpuMeter();
        const r: LoadResult = await loadgen.run({ url: f.url('/'), connections: settings.connections, seconds: settings.seconds });
        const cpu = meter.stop(r.requests, f.cpuParties());
        runs.push({
          round,
          front: name,
          requestsPerSec: r.requestsPerSec,
          latencyP50Ms: r.latencyP50Ms,
          latencyP99Ms: r.latencyP99Ms,
          failed: r.failed,
          frontUsPerRequest: cpu.usPerRequest.front,
          appUsPerRequest: cpu.usPerRequest.apps,
        });
        say(
          `round ${round}   ${name.padEnd(10)} ${fixed(r.requestsPerSec, 0).padStart(7)} req/s  p50 ${fixed(r.latencyP50Ms, 2)} ms  p99 ${fixed(r.latencyP99Ms, 2)} ms` +
            `  cpu µs/req: front ${fixed(cpu.usPerRequest.front, 0)}, apps ${fixed(cpu.usPerRequest.apps, 0)}, other ${fixed(cpu.cores.other, 2)} cores${r.failed ? `  FAILED ${r.failed}` : ''}`,
        );
      }
    }
    const of = (round: number, front: WsgiRun['front']) => runs.find((r) => r.round === round && r.front === front)!.requestsPerSec;
    const ratios = Array.from({ length: settings.rounds }, (_, i) => of(i + 1, 'holdfast') / of(i + 1, 'gunicorn'));
    const report: WsgiReport = {
      runs,
      ratioToGunicorn: median(ratios),
      holdfastRequestsPerSec: median(runs.filter((r) => r.front === 'holdfast').map((r) => r.requestsPerSec)),
      gunicornRequestsPerSec: median(runs.filter((r) => r.front === 'gunicorn').map((r) => r.requestsPerSec)),
      failed: runs.reduce((n, r) => n + r.failed, 0),
      passenger: which('passenger') ? 'installed but not yet driven by this bench' : 'not installed: skipped',
    };
    say(`wsgi: holdfast ${fixed(report.holdfastRequestsPerSec, 0)} req/s, gunicorn -w 2 ${fixed(report.gunicornRequestsPerSec, 0)} req/s (medians); holdfast/gunicorn ${ratios.map((r) => fixed(r, 2)).join(', ')} per round`);
    return report;
  } finally {
    await holdfast.stop();
    await gunicorn.stop();
  }
}
