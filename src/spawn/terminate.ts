// Stopping an app process: SIGTERM to its whole process group, SIGKILL after the grace period,
// and once the leader is gone, SIGKILL for anything it left behind in the group (forked workers,
// `sleep &` of a start script) so nothing outlives the process holdfast was asked to stop.

import { groupMembers } from './usage';

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

const MEMBER_POLL_MS = 100;

/**
 * The terminate() of one process group. The first begin() sends SIGTERM; every begin() may bring
 * the SIGKILL deadline closer (a later `terminate(0)` cuts short an earlier `terminate(30_000)`),
 * never push it back.
 */
export class GroupTerminator {
  private started = false;
  private killAt = Number.POSITIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pgid: number,
    private readonly leaderExited: () => boolean,
  ) {}

  get terminating(): boolean {
    return this.started;
  }

  begin(graceMs: number): void {
    if (!this.started) {
      this.started = true;
      if (!this.leaderExited()) signalGroup(this.pgid, 'SIGTERM');
    }
    if (graceMs === Number.POSITIVE_INFINITY) return;
    // setTimeout fires at once past 2^31-1 ms; NaN would too, so it is taken as "now" on purpose.
    const delayMs = Number.isNaN(graceMs) ? 0 : Math.min(Math.max(0, graceMs), 2 ** 31 - 1);
    const at = Date.now() + delayMs;
    if (at >= this.killAt) return;
    this.killAt = at;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (delayMs === 0) {
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

  /**
   * Called once the leader has exited: makes sure nothing of the group is left. Outside a
   * terminate() the rest dies at once (its app is gone); during one, the rest of the group gets
   * what is left of the grace period to finish, as the leader had.
   */
  async sweep(): Promise<void> {
    if (this.started) {
      // Ref'd on purpose, and bounded by the deadline: the caller is awaiting this stop.
      while (Date.now() < this.killAt && (await groupMembers(this.pgid)).length > 0) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(MEMBER_POLL_MS, this.killAt - Date.now())));
      }
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    signalGroup(this.pgid, 'SIGKILL');
  }
}
