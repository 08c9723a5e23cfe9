// The hand-off path's side of the group: whole visitor connections leased to processes, and their
// spreading when a process joins. Balancing is per connection (fewest connections, then least
// recently used; the newest generation first, as for sessions).

import type { AppProcess } from '../app-process';
import type { ConnectionLease } from '../leases';

export interface HandoffHost {
  /** Where a connection would go now, if anywhere (the group's routing, with connection counts). */
  target(): AppProcess | undefined;
  now(): number;
  inProbation(p: AppProcess): boolean;
  enabled(): AppProcess[];
  /** A connection of the process ended (given back or over). */
  ended(p: AppProcess): void;
  /** A connection was leased: the group reconsiders (scaling). */
  leased(): void;
}

export class Handoff {
  /** The share each process was last asked to shed down to: asked once, not on every tick. */
  private readonly asked = new WeakMap<AppProcess, number>();

  constructor(private readonly host: HandoffHost) {}

  tryAcquire(): ConnectionLease | undefined {
    const p = this.host.target();
    if (!p) return undefined;
    const taker = p.handle!.connectionTaker!;
    p.openConnection(this.host.now());
    this.host.leased();
    return {
      pid: p.pid,
      generation: p.generation,
      hand: (connection, done) => {
        let open = true;
        taker.take(connection, (returned, replay) => {
          if (!open) return;
          open = false;
          p.closeConnection(this.host.now());
          this.host.ended(p);
          done(returned, replay);
        });
      },
    };
  }

  /**
   * Whether the process may take whole connections now: it has a taker, is out of probation, and is
   * not busy with a long request (one that serves one at a time gave connections back).
   */
  takes(p: AppProcess): boolean {
    const taker = p.handle?.connectionTaker;
    return taker !== undefined && !this.host.inProbation(p) && taker.busyNow?.() !== true;
  }

  /**
   * Kept-alive connections stay where they were handed: when a process joins, those of fuller
   * processes that are at rest come back and are handed again, to the least loaded.
   */
  rebalance(): void {
    const takers = this.host.enabled().filter((p) => this.takes(p));
    if (takers.length < 2) return;
    const total = takers.reduce((n, p) => n + p.connectionCount, 0);
    const fair = Math.ceil(total / takers.length);
    for (const p of takers) {
      if (p.connectionCount <= fair) this.asked.delete(p);
      else if (this.asked.get(p) !== fair) {
        this.asked.set(p, fair);
        p.handle!.connectionTaker!.shed(fair);
      }
    }
  }

  /** Asks every process on the hand-off path for its latest request counts (metrics read them). */
  async flush(processes: readonly AppProcess[]): Promise<void> {
    await Promise.all(processes.map((p) => p.handle?.connectionTaker?.flush()));
  }
}
