// All groups of one holdfast, and max_pool_size across them. The proxy asks the pool for sessions
// and connections, and operators act on it (status, restart, resume); it reaches the group.

import type { RequestInfo } from './app-process';
import type { Group } from './group/group';
import type { AcquireOptions, ConnectionLease, ConnectionSource, Session, SessionSource } from './leases';
import type { RestartTicket } from './operations';
import type { PoolSnapshot } from './snapshots';

export class Pool implements SessionSource, ConnectionSource {
  private readonly groups: Group[] = [];

  constructor(readonly maxPoolSize: number) {}

  add(group: Group): void {
    this.groups.push(group);
  }

  /** How many more processes may start across the whole pool. */
  room(): number {
    return this.maxPoolSize - this.processCount();
  }

  processCount(): number {
    return this.groups.reduce((n, g) => n + g.liveCount(), 0);
  }

  /** holdfast runs one app per instance: restart and resume act on it. */
  private only(): Group {
    const group = this.groups[0];
    if (!group) throw new Error('the pool has no group');
    return group;
  }

  acquire(options?: AcquireOptions): Promise<Session> {
    return this.only().acquire(options);
  }

  tryAcquire(avoidPid?: number, request?: RequestInfo): Session | undefined {
    return this.only().tryAcquire(avoidPid, request);
  }

  tryAcquireConnection(): ConnectionLease | undefined {
    return this.only().tryAcquireConnection();
  }

  takesConnectionsNow(): boolean {
    return this.only().takesConnectionsNow();
  }

  restart(options: { rolling?: boolean }): RestartTicket {
    return this.only().restart(options);
  }

  resume(): { was_resisting: boolean } {
    return this.only().resume();
  }

  /** Fresh request counts from processes on the hand-off path (metrics read them). */
  async flushHandedOff(): Promise<void> {
    await Promise.all(this.groups.map((g) => g.flushHandedOff()));
  }

  ready(): boolean {
    return this.groups.some((g) => g.ready());
  }

  snapshot(): PoolSnapshot {
    const groups = this.groups.map((g) => g.snapshot());
    return {
      max_pool_size: this.maxPoolSize,
      process_count: groups.reduce((n, g) => n + g.processes.length, 0),
      requests_in_top_level_queue: 0,
      groups,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.groups.map((g) => g.close()));
  }
}
