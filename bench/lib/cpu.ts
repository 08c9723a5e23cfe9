// Where the CPU of a run went, from /proc: the front (holdfast, or nginx's master and workers), the
// app processes, the load generator, and every other process on the machine. The ratios are
// mostly CPU per request on 2 shared cores, so "µs of front CPU per request" is the figure an
// optimization moves most directly, and "other" tells whether someone else's work skewed a run.

import { readdirSync, readFileSync } from 'node:fs';

/** Linux reports process times in USER_HZ, which is 100 on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

interface ProcTimes {
  ppid: number;
  /** utime + stime */
  own: number;
  /** cutime + cstime: children it has waited for (how an exited wrk's CPU stays visible). */
  reaped: number;
}

type Snapshot = Map<number, ProcTimes>;

function readProc(pid: number): ProcTimes | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields are counted from the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
    return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined; // gone meanwhile
  }
}

function snapshot(): Snapshot {
  const snap: Snapshot = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const t = readProc(Number(name));
    if (t) snap.set(Number(name), t);
  }
  return snap;
}

function descendants(snap: Snapshot, roots: readonly number[]): Set<number> {
  const children = new Map<number, number[]>();
  for (const [pid, t] of snap) {
    const list = children.get(t.ppid);
    if (list) list.push(pid);
    else children.set(t.ppid, [pid]);
  }
  const out = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const pid = stack.pop()!;
    if (out.has(pid)) continue;
    out.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

export interface CpuUse {
  seconds: number;
  /** Average cores busy over the run, per party. */
  cores: { front: number; apps: number; loadGenerator: number; bench: number; other: number };
  /** CPU microseconds per request served, per party. */
  usPerRequest: { front: number; apps: number; loadGenerator: number };
}

export interface CpuParties {
  /** The front's processes: these and their descendants, except the apps. */
  front: readonly number[];
  apps: readonly number[];
}

export class CpuMeter {
  private readonly start = snapshot();
  private readonly startedAt = process.hrtime.bigint();

  stop(requests: number, parties: CpuParties): CpuUse {
    const end = snapshot();
    const seconds = Number(process.hrtime.bigint() - this.startedAt) / 1e9;
    const delta = (pid: number, field: 'own' | 'reaped') => {
      const a = this.start.get(pid)?.[field] ?? 0;
      const b = end.get(pid)?.[field];
      return b === undefined ? 0 : Math.max(0, b - a);
    };
    const apps = new Set(parties.apps);
    const frontPids = [...descendants(end, parties.front)].filter((p) => !apps.has(p));
    const mine = descendants(end, [process.pid]);
    const sum = (pids: Iterable<number>, fields: Array<'own' | 'reaped'>) => {
      let t = 0;
      for (const pid of pids) for (const f of fields) t += delta(pid, f);
      return t;
    };
    const frontTicks = sum(frontPids, ['own']);
    const appTicks = sum(apps, ['own']);
    // The load generator is the bench's child, run and reaped within the interval.
    const loadTicks = delta(process.pid, 'reaped');
    const benchTicks = delta(process.pid, 'own');
    // Everything outside the bench's tree, kernel threads aside (ksoftirqd does our loopback work).
    // Their own time only: a reaped child's time arrives whole at its exit, however long it ran.
    const others = [...end.keys()].filter((pid) => !mine.has(pid) && pid !== 2 && end.get(pid)!.ppid !== 2);
    const otherTicks = sum(others, ['own']);
    const cores = (ticks: number) => ticks / TICKS_PER_SECOND / seconds;
    const perRequest = (ticks: number) => (requests > 0 ? (ticks / TICKS_PER_SECOND / requests) * 1e6 : NaN);
    return {
      seconds,
      cores: { front: cores(frontTicks), apps: cores(appTicks), loadGenerator: cores(loadTicks), bench: cores(benchTicks), other: cores(otherTicks) },
      usPerRequest: { front: perRequest(frontTicks), apps: perRequest(appTicks), loadGenerator: perRequest(loadTicks) },
    };
  }
}

/** CPU ticks per thread of one process, by thread name (node's main thread has the process's name). */
export function threadTicks(pid: number): Map<number, { name: string; ticks: number }> {
  const out = new Map<number, { name: string; ticks: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), { name: Number(tid) === pid ? 'main (JS)' : name, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // thread gone
    }
  }
  return out;
}

/** Cores used per thread name between two threadTicks() snapshots taken `seconds` apart. */
export function threadCores(before: ReturnType<typeof threadTicks>, after: ReturnType<typeof threadTicks>, seconds: number): Array<{ thread: string; cores: number }> {
  const byName = new Map<string, number>();
  for (const [tid, t] of after) {
    const d = t.ticks - (before.get(tid)?.ticks ?? 0);
    byName.set(t.name, (byName.get(t.name) ?? 0) + d);
  }
  return [...byName.entries()]
    .map(([thread, ticks]) => ({ thread, cores: ticks / TICKS_PER_SECOND / seconds }))
    .filter((t) => t.cores > 0)
    .sort((a, b) => b.cores - a.cores);
}
