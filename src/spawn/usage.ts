// RSS and CPU of an app process group, read from /proc (Linux). Summed over the group because a
// Node app's forked workers or a start script's children are part of what the app costs.

import { readFileSync } from 'node:fs';
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

/** The live (non-zombie) members of process group pgid, as they are now. */
export async function groupMembers(pgid: number): Promise<ProcStat[]> {
  return (await scanAll()).filter((s) => isLiveMember(s, pgid));
}

function isLiveMember(s: ProcStat, pgid: number): boolean {
  return s.pgrp === pgid && s.state !== 'Z' && s.state !== 'X';
}

/** Every process's stat, read in one pass of /proc. */
async function scanAll(): Promise<ProcStat[]> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  const stats = await Promise.all(names.filter((n) => /^\d+$/.test(n)).map((n) => readProcStat(Number(n))));
  return stats.filter((s): s is ProcStat => s !== undefined);
}

/**
 * How long one scan of /proc serves every sampler that asks: all of a pool's processes are sampled
 * in the same tick, and each used to read the whole of /proc for itself.
 */
const SCAN_SHARED_MS = 500;
let lastScan: { at: number; stats: Promise<ProcStat[]> } | undefined;

function sharedScan(): Promise<ProcStat[]> {
  const now = Date.now();
  if (!lastScan || now - lastScan.at > SCAN_SHARED_MS) lastScan = { at: now, stats: scanAll() };
  return lastScan.stats;
}

/** The stat of one process, read at once (a /proc file is never on disk: ~15 µs, no thread pool round trip). */
function readProcStatNow(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined; // gone meanwhile
  }
}

function rssBytesOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Every this many samples the group's members are found again by a scan of /proc (a process the
 * app started since then is counted from then on); in between, only the members known are read.
 * Scanning for every sample of every process cost the app processes a fifth of their speed under
 * load (docs/performance.md): hundreds of file reads through the thread pool every 2 s, on the
 * cores the apps run on.
 */
const RESCAN_EVERY = 5;

/** Successive samples of one process group; CPU is measured between consecutive samples. */
export class GroupUsageSampler {
  /** CPU ticks each member had at the previous sample; members not in it count from their start. */
  private previousTicks = new Map<number, number>();
  private previousAt: number;
  private members: number[] = [];
  private samples = 0;

  constructor(
    private readonly pgid: number,
    startedAt: number = Date.now(),
  ) {
    this.previousAt = startedAt;
  }

  async sample(): Promise<UsageSample> {
    let members: ProcStat[];
    if (this.samples++ % RESCAN_EVERY === 0 || this.members.length === 0) {
      members = (await sharedScan()).filter((s) => isLiveMember(s, this.pgid));
    } else {
      members = [];
      for (const pid of this.members) {
        const s = readProcStatNow(pid);
        if (s && isLiveMember(s, this.pgid)) members.push(s);
      }
    }
    this.members = members.map((m) => m.pid);
    const now = Date.now();
    let ticks = 0;
    let rssBytes = 0;
    const seen = new Map<number, number>();
    for (const m of members) {
      ticks += Math.max(0, m.cpuTicks - (this.previousTicks.get(m.pid) ?? 0));
      seen.set(m.pid, m.cpuTicks);
      rssBytes += rssBytesOf(m.pid);
    }
    const elapsedMs = now - this.previousAt;
    this.previousTicks = seen;
    this.previousAt = now;
    const cpuPercent = elapsedMs > 0 ? (ticks / CLOCK_TICKS_PER_SECOND / (elapsedMs / 1000)) * 100 : 0;
    return { rssBytes, cpuPercent: Math.round(cpuPercent * 10) / 10 };
  }
}
