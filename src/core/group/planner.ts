// When to spawn: the one place that decides, after every change, whether the group starts a
// process and from which generation — on demand (scaling.ts decides), or while resisting the
// replacement, rollback step or recovery that resistance.ts owes.

import type { SpawnCause } from '../app-process';
import { spawnDecision } from '../scaling';
import type { GroupContext, PoolRoomLike } from './context';
import type { Sessions } from './sessions';

export interface PlannerParts {
  sessions: Sessions;
  restarting(): boolean;
  spawn(generation: number, cause: SpawnCause): void;
  poolRoom: PoolRoomLike;
}

export class SpawnPlanner {
  constructor(
    private readonly ctx: GroupContext,
    private readonly parts: PlannerParts,
  ) {}

  plan(): void {
    const { processes, resistance, options, clock } = this.ctx;
    // Called twice per request: count in one pass, allocate nothing, and stop early when a spawn
    // is out of the question anyway.
    let enabled = 0;
    let spawning = 0;
    let busyEnabled = 0;
    let healthy = 0;
    const now = clock.now();
    const limits = this.parts.sessions.limits();
    for (const p of processes.all()) {
      if (p.state === 'spawning') spawning++;
      else if (p.state === 'enabled') {
        enabled++;
        if (!p.takesSession(now, limits) || p.isBusy(options)) busyEnabled++;
      }
      if (p.state !== 'draining' && !resistance.isBroken(p.generation)) healthy++;
    }
    if (spawning > 0) return;
    if (resistance.resisting) {
      const view = { enabled, spawning, restarting: this.parts.restarting(), healthy, room: this.hasRoom(options.rollingRestartSurge) };
      const plan = resistance.plan(view, this.ctx.generation(), () => this.ctx.reconsider());
      if (plan) this.parts.spawn(plan.generation, plan.cause);
      return;
    }
    if (this.parts.restarting() || resistance.backingOff()) return;
    const decision = spawnDecision(
      { live: processes.liveCount, enabled, spawning, busyEnabled, waiting: this.ctx.queue.length, poolRoom: this.parts.poolRoom.room(), resisting: false, restarting: false, backingOff: false },
      options,
    );
    if (decision === 'spawn') this.parts.spawn(resistance.generationFor('demand', this.ctx.generation()), enabled < options.minInstances ? 'replace' : 'demand');
  }

  /** Whether one more process fits, allowing `surge` above max_pool_size. */
  hasRoom(surge: number): boolean {
    return this.ctx.processes.liveCount < this.ctx.options.maxPoolSize + surge && this.parts.poolRoom.room() + surge > 0;
  }

  /** A spawn that finished after its generation stopped being wanted is stopped, not attached. */
  outdated(generation: number, cause: SpawnCause): boolean {
    const newest = this.ctx.generation();
    if (cause === 'restart') return generation < newest;
    if (cause === 'start' || cause === 'demand') return generation < this.ctx.resistance.generationFor('demand', newest);
    return false; // replacements, rollbacks and recoveries start from an older release on purpose
  }
}
