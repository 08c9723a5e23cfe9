// RSS and CPU of an app process group, read from /proc (Linux). Summed over the group because a
// Node app's forked workers or a start script's children are part of what the app costs.

import { readdir, readFile } from 'node:fs/promises';
import type { UsageSample } from '../core/process-handle';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every mainstream Linux. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcStat {
  pid: number;
  pgrp: number;
  state: string;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and parentheses, so split after the last ')'. */
export function parseProcStat(pid: number, text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close === -1) return undefined;
  // fields[0] is field 3 (state) of proc(5)
  const fields = text.slice(close + 2).split(' ');
  const pgrp = Number(fields[2]);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(pgrp) || !Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { pid, pgrp, state: fields[0] ?? '?', cpuTicks: utime + stime };
}

export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(pid, await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined; // gone meanwhile
  }
}

/** The live (non-zombie) members of process group pgid. */
export async function groupMembers(pgid: number): Promise<ProcStat[]> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  const stats = await Promise.all(names.filter((n) => /^\d+$/.test(n)).map((n) => readProcStat(Number(n))));
  return stats.filter((s): s is ProcStat => s !== undefined && s.pgrp === pgid && s.state !== 'Z' && s.state !== 'X');
}

async function rssBytesOf(pid: number): Promise<number> {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Successive samples of one process group; CPU is measured between consecutive samples. */
export class GroupUsageSampler {
  /** CPU ticks each member had at the previous sample; members not in it count from their start. */
  private previousTicks = new Map<number, number>();
  private previousAt: number;

  constructor(
    private readonly pgid: number,
    startedAt: number = Date.now(),
  ) {
    this.previousAt = startedAt;
  }

  async sample(): Promise<UsageSample> {
    const members = await groupMembers(this.pgid);
    const now = Date.now();
    const rss = await Promise.all(members.map((m) => rssBytesOf(m.pid)));
    let ticks = 0;
    const seen = new Map<number, number>();
    for (const m of members) {
      ticks += Math.max(0, m.cpuTicks - (this.previousTicks.get(m.pid) ?? 0));
      seen.set(m.pid, m.cpuTicks);
    }
    const elapsedMs = now - this.previousAt;
    this.previousTicks = seen;
    this.previousAt = now;
    const cpuPercent = elapsedMs > 0 ? (ticks / CLOCK_TICKS_PER_SECOND / (elapsedMs / 1000)) * 100 : 0;
    return { rssBytes: rss.reduce((a, b) => a + b, 0), cpuPercent: Math.round(cpuPercent * 10) / 10 };
  }
}
