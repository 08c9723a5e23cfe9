// An on-CPU cross-check of the V8 profile with Linux perf, when perf is installed and allowed.
//
// V8's --cpu-prof samples wall-clock time on the main thread, and gives the whole of a native
// call's time, kernel included, to the binding that made it: on a busy 2-core machine the writev()
// of a response collects the time the thread spends woken-up-but-waiting and in the kernel. perf
// samples the CPU, with kernel stacks and (through --perf-basic-prof) JS function names, so it
// shows how much is really kernel, V8 runtime, and JIT-compiled JS.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { exited } from './processes';

export interface PerfLine {
  percent: number;
  name: string;
}

export interface PerfSummary {
  samples: number;
  byDso: PerfLine[];
  topSelf: PerfLine[];
  /** Inclusive shares of a few entry points: all syscalls, writev, write, read, GC. */
  inclusive: PerfLine[];
}

export function perfAvailable(): boolean {
  return spawnSync('perf', ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** Starts `perf record` on one thread; stop() ends it and returns the report, or undefined. */
export function perfRecord(tid: number, file: string): { stop(top: number): Promise<PerfSummary | undefined> } {
  const child: ChildProcess = spawn('perf', ['record', '-q', '-F', '997', '-g', '-t', String(tid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.on('error', () => undefined);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return {
    async stop(top) {
      child.kill('SIGINT');
      if (!(await exited(child, 20_000))) {
        child.kill('SIGKILL');
        return undefined;
      }
      if (child.exitCode !== 0 && child.signalCode === null && !/wrote/.test(stderr)) return undefined;
      try {
        return report(file, top);
      } finally {
        // node --perf-basic-prof leaves /tmp/perf-<pid>.map behind; perf report has read it.
        rmSync(`/tmp/perf-${tid}.map`, { force: true });
      }
    },
  };
}

function perfReport(file: string, args: string[]): string {
  const r = spawnSync('perf', ['report', '-i', file, '--stdio', '-g', 'none', ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  return r.stdout ?? '';
}

function lines(text: string): PerfLine[] {
  const out: PerfLine[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^\s+([\d.]+)%\s+(?:[\d.]+%\s+)?(.*\S)\s*$/.exec(line);
    if (m) out.push({ percent: Number(m[1]), name: m[2]!.replace(/^\[[.k]\]\s+/, '') });
  }
  return out;
}

const INCLUSIVE: Array<[RegExp, string]> = [
  [/^entry_SYSCALL_64_after_hwframe$/, 'all system calls (kernel side)'],
  [/^__GI___writev$/, 'writev() (responses to visitors)'],
  [/^__GI___libc_write$/, 'write() (requests to app processes)'],
  [/^read$/, 'read()'],
  [/^(epoll_wait|epoll_pwait)$/, 'epoll_wait()'],
  [/^Builtins_RunMicrotasks$/, 'microtasks (promise jobs)'],
  [/^v8::internal::Heap::CollectGarbage/, 'GC (V8 Heap::CollectGarbage)'],
];

function report(file: string, top: number): PerfSummary {
  let samples = 0;
  const byDso: PerfLine[] = [];
  for (const line of perfReport(file, ['--no-children', '--sort', 'dso', '-n']).split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\d+)\s+(.*\S)\s*$/.exec(line);
    if (!m) continue;
    samples += Number(m[2]);
    byDso.push({ percent: Number(m[1]), name: m[3]!.replace(/^\[JIT\] tid \d+$/, '[JIT] (JS compiled by V8)') });
  }
  const topSelf = lines(perfReport(file, ['--no-children', '--sort', 'sym'])).slice(0, top);
  const children = lines(perfReport(file, ['--children', '--sort', 'sym']));
  const inclusive: PerfLine[] = [];
  for (const [re, label] of INCLUSIVE) {
    const hit = children.filter((l) => re.test(l.name)).sort((a, b) => b.percent - a.percent)[0];
    if (hit) inclusive.push({ percent: hit.percent, name: label });
  }
  return { samples, byDso, topSelf, inclusive };
}
