// Markdown tables for docs/performance.md from the result files of `npm run bench`:
//
//   node dist/bench/report.js bench/results/A.json bench/results/B.json bench/results/C.json
//
// One table per run (every round's req/s and ratio, then the medians), then the runs side by side.

import { readFileSync } from 'node:fs';
import { fixed, median } from './lib/stats';
import type { FrontSummary } from './lib/summary';

interface ResultFile {
  startedAt: string;
  commit: string;
  uncommittedChanges: boolean;
  settings: { rounds: number; seconds: number; connections: number };
  versions: { node: string; loadGenerator: string; nginx: string | null };
  noise?: string;
  failedRequests: number;
  goalLines: string[];
  apps: Array<{
    app: string;
    fronts: Record<string, FrontSummary | undefined>;
    holdfast?: { idleAfterStartRssBytes: number; peakUnderLoadRssBytes: number; idleAfterLoadRssBytes: number };
    bodies?: { holdfastPeakRssBytes: number; runs: Array<{ front: string; direction: string; result: { requestsPerSec: number; bytesPerSec: number; failed: number }; bodyBytes: number }> };
  }>;
}

const FRONTS = ['direct', 'holdfast', 'holdfast-proxy', 'nginx'];
const mb = (b: number | undefined) => (b === undefined || !Number.isFinite(b) ? 'n/a' : (b / 1024 / 1024).toFixed(0));
const row = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;

function runTable(r: ResultFile, n: number): string {
  const out: string[] = [];
  const rounds = r.settings.rounds;
  out.push(`**Run ${n}** — ${r.startedAt}, commit ${r.commit}${r.uncommittedChanges ? ' (+ uncommitted changes)' : ''}; ${r.noise ?? ''}`);
  out.push('');
  const roundHeads = Array.from({ length: rounds }, (_, i) => `round ${i + 1}: req/s (ratio)`);
  out.push(row(['app', 'front', ...roundHeads, 'median ratio', 'p50 ms', 'p99 ms', 'p99 − direct', 'front µs/req', 'failed']));
  out.push(row(['---', '---', ...roundHeads.map(() => '---:'), '---:', '---:', '---:', '---:', '---:', '---:']));
  for (const a of r.apps) {
    for (const name of FRONTS) {
      const s = a.fronts[name];
      if (!s) continue;
      const cells = Array.from({ length: rounds }, (_, i) => {
        const pr = s.perRound.find((p) => p.round === i + 1);
        return pr ? `${fixed(pr.requestsPerSec, 0)} (${fixed(pr.ratio, 2)})` : '';
      });
      out.push(
        row([
          a.app,
          name,
          ...cells,
          `**${fixed(s.ratio, 2)}**`,
          fixed(s.latencyP50Ms, 2),
          fixed(s.latencyP99Ms, 2),
          name === 'direct' ? '' : `${s.p99OverDirectMs >= 0 ? '+' : ''}${fixed(s.p99OverDirectMs, 2)}`,
          name === 'direct' ? '' : fixed(s.frontUsPerRequest, 0),
          String(s.failed),
        ]),
      );
    }
  }
  const hello = r.apps.find((a) => a.app === 'hello');
  const rss = r.apps
    .filter((a) => a.holdfast)
    .map((a) => `${a.app}: idle ${mb(a.holdfast!.idleAfterStartRssBytes)} MB, under load ${mb(a.holdfast!.peakUnderLoadRssBytes)} MB, idle after ${mb(a.holdfast!.idleAfterLoadRssBytes)} MB`);
  if (hello?.bodies) rss.push(`streaming large bodies: ${mb(hello.bodies.holdfastPeakRssBytes)} MB`);
  out.push('');
  out.push(`holdfast RSS — ${rss.join('; ')}.`);
  if (hello?.bodies) {
    const b = hello.bodies.runs.map((x) => `${x.direction} ${x.front} ${fixed((x.direction === 'download' ? x.result.bytesPerSec : x.result.requestsPerSec * x.bodyBytes) / 1024 / 1024, 0)} MB/s`);
    out.push(`Large bodies: ${b.join(', ')}.`);
  }
  out.push('');
  out.push(r.goalLines.map((l) => `\`${l}\``).join('  \n'));
  return out.join('\n');
}

function sideBySide(files: readonly ResultFile[]): string {
  const out: string[] = [];
  const heads = files.map((_, i) => `run ${i + 1}`);
  out.push(row(['figure', ...heads, 'median of runs']));
  out.push(row(['---', ...heads.map(() => '---:'), '---:']));
  const line = (label: string, pick: (r: ResultFile) => number | undefined, digits: number) => {
    const v = files.map(pick);
    out.push(row([label, ...v.map((x) => fixed(x ?? NaN, digits)), fixed(median(v.filter((x): x is number => x !== undefined)), digits)]));
  };
  const front = (r: ResultFile, app: string, name: string) => r.apps.find((a) => a.app === app)?.fronts[name];
  for (const app of ['hello', 'cpu']) {
    for (const name of ['holdfast', 'holdfast-proxy', 'nginx']) line(`${app}: ${name} ratio`, (r) => front(r, app, name)?.ratio, 2);
    line(`${app}: direct req/s`, (r) => front(r, app, 'direct')?.requestsPerSec, 0);
    line(`${app}: holdfast req/s`, (r) => front(r, app, 'holdfast')?.requestsPerSec, 0);
    line(`${app}: holdfast p99 − direct p99 (ms)`, (r) => front(r, app, 'holdfast')?.p99OverDirectMs, 2);
    line(`${app}: holdfast CPU µs/request`, (r) => front(r, app, 'holdfast')?.frontUsPerRequest, 0);
    line(`${app}: nginx CPU µs/request`, (r) => front(r, app, 'nginx')?.frontUsPerRequest, 0);
  }
  line('holdfast RSS idle (MB)', (r) => Math.max(...r.apps.map((a) => a.holdfast?.idleAfterStartRssBytes ?? 0)) / 1024 / 1024, 0);
  line('holdfast RSS under load (MB)', (r) => Math.max(...r.apps.map((a) => a.holdfast?.peakUnderLoadRssBytes ?? 0)) / 1024 / 1024, 0);
  line('holdfast RSS large bodies (MB)', (r) => (r.apps.find((a) => a.app === 'hello')?.bodies?.holdfastPeakRssBytes ?? NaN) / 1024 / 1024, 0);
  line('failed requests', (r) => r.failedRequests, 0);
  return out.join('\n');
}

const files = process.argv.slice(2).map((f) => JSON.parse(readFileSync(f, 'utf8')) as ResultFile);
if (files.length === 0) {
  process.stderr.write('usage: node dist/bench/report.js RESULT.json [RESULT.json ...]\n');
  process.exit(2);
}
process.stdout.write(`${files.map((f, i) => runTable(f, i + 1)).join('\n\n')}\n\n${sideBySide(files)}\n`);
