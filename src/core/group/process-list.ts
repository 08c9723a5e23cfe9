// The group's processes: who is listed, in which state, and the waits for a drain to finish.

import type { AppProcess } from '../app-process';
import type { Clock } from '../clock';

export class ProcessList {
  // Invariant: holds every process that is spawning, enabled or draining, in spawn order, and no
  // stopped one; a spawning process has no handle and no sessions.
  private list: AppProcess[] = [];
  private readonly drainWaiters = new Map<AppProcess, Array<() => void>>();

  constructor(private readonly clock: Clock) {}

  all(): readonly AppProcess[] {
    return this.list;
  }

  attach(p: AppProcess): void {
    this.list.push(p);
  }

  /** Takes a process off the list for good (it is gone or thrown away); a drain wait on it ends. */
  detach(p: AppProcess): void {
    if (p.state !== 'stopped') p.transition('stopped');
    this.list = this.list.filter((x) => x !== p);
    this.drainEnded(p);
  }

  enabled(): AppProcess[] {
    return this.list.filter((p) => p.state === 'enabled');
  }

  spawningCount(): number {
    let n = 0;
    for (const p of this.list) if (p.state === 'spawning') n++;
    return n;
  }

  /** Processes that count against max_pool_size: spawning, enabled and draining. */
  get liveCount(): number {
    return this.list.length;
  }

  anyDraining(): boolean {
    return this.list.some((p) => p.state === 'draining');
  }

  /** Resolves once nothing holds the process's drain, or after timeoutMs. */
  waitDrained(p: AppProcess, timeoutMs: number): Promise<void> {
    if (p.isDrained()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(finish, timeoutMs);
      const waiting = this.drainWaiters.get(p) ?? [];
      waiting.push(finish);
      this.drainWaiters.set(p, waiting);
      function finish() {
        timer.cancel();
        resolve();
      }
    });
  }

  /** A session or connection of the process ended: its drain may be over. */
  released(p: AppProcess): void {
    if (p.state === 'draining' && p.isDrained()) this.drainEnded(p);
  }

  private drainEnded(p: AppProcess): void {
    const waiting = this.drainWaiters.get(p);
    this.drainWaiters.delete(p);
    for (const done of waiting ?? []) done();
  }
}
