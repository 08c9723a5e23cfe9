// Stopping an app process: SIGTERM to its whole process group, SIGKILL after the grace period,
// and once the leader is gone, SIGKILL for anything it left behind in the group (forked workers,
// `sleep &` of a start script) so nothing outlives the process holdfast was asked to stop.

import type { ExitInfo } from '../core/spawner';

/**
 * Sends signal to every process of group pgid. Returns false when no process could be signalled
 * (the group is empty, or no longer ours); never throws.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false; // -0 and -1 would hit far more than one group
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nothing left; EPERM: the id now belongs to someone else
  }
}

/**
 * The terminate() of one process group. The first call sends SIGTERM; every call may bring the
 * SIGKILL deadline closer (a later `terminate(0)` cuts short an earlier `terminate(30_000)`),
 * never push it back. All calls resolve with the same ExitInfo once the leader has exited.
 */
export class GroupTerminator {
  private result: Promise<ExitInfo> | undefined;
  private killAt = Number.POSITIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pgid: number,
    private readonly exited: Promise<ExitInfo>,
    private readonly hasExited: () => boolean,
  ) {}

  terminate(graceMs: number): Promise<ExitInfo> {
    if (this.result === undefined) {
      if (!this.hasExited()) signalGroup(this.pgid, 'SIGTERM');
      this.result = this.exited.then((info) => {
        if (this.timer !== undefined) clearTimeout(this.timer);
        this.timer = undefined;
        signalGroup(this.pgid, 'SIGKILL'); // members the leader left behind
        return info;
      });
    }
    this.scheduleKill(graceMs);
    return this.result;
  }

  private scheduleKill(graceMs: number): void {
    if (this.hasExited() || graceMs === Number.POSITIVE_INFINITY) return;
    // setTimeout fires at once past 2^31-1 ms; NaN would too, so it is taken as "now" on purpose.
    const delayMs = Number.isNaN(graceMs) ? 0 : Math.min(Math.max(0, graceMs), 2 ** 31 - 1);
    const at = Date.now() + delayMs;
    if (at >= this.killAt) return;
    this.killAt = at;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (delayMs === 0) {
      this.timer = undefined;
      signalGroup(this.pgid, 'SIGKILL');
      return;
    }
    // unref: the child process itself keeps the loop alive for as long as this timer matters.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      signalGroup(this.pgid, 'SIGKILL');
    }, delayMs);
    this.timer.unref();
  }
}
