// The requests written to each app process and not answered yet, oldest first, so that when a
// process goes away the retry policy can tell the one it was most likely working on (the oldest:
// a process serves what it was sent in order) from the ones it had not started on.

import type { Attempt } from './forward';

export class UnansweredRequests {
  /** Per pid, the attempts whose request was written and whose answer has not begun settling. */
  private readonly byPid = new Map<number, Set<Attempt>>();
  /** Per pid that went away, the attempt taken for the cause. */
  private readonly suspects = new Map<number, Attempt>();

  sent(attempt: Attempt): void {
    const pid = attempt.session.pid;
    let set = this.byPid.get(pid);
    if (!set) this.byPid.set(pid, (set = new Set()));
    set.add(attempt);
  }

  /**
   * The attempt is over; returns whether it is the suspect of its process's failure. The first
   * failure seen for a process names the oldest unanswered request then as the suspect.
   */
  settled(attempt: Attempt, failed: boolean): boolean {
    const pid = attempt.session.pid;
    const set = this.byPid.get(pid);
    if (failed && set && !this.suspects.has(pid)) {
      const oldest = set.values().next().value;
      if (oldest) this.suspects.set(pid, oldest);
    }
    set?.delete(attempt);
    const suspect = this.suspects.get(pid) === attempt;
    if (set && set.size === 0) {
      this.byPid.delete(pid);
      this.suspects.delete(pid);
    }
    return suspect;
  }
}
