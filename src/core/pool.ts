// All groups of one holdfast, and max_pool_size across them.

import type { Group } from './group';
import type { PoolSnapshot } from './control';

export class Pool {
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

  list(): readonly Group[] {
    return this.groups;
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
