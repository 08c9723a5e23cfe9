// Out-of-band work on a timer: noticing use on handed-off connections, max_requests, idle
// cleaning, and sampling RSS and CPU for memory_limit.

import type { AppProcess, StopReason } from '../app-process';
import { idleToClean, recycleReason } from '../scaling';
import type { ScalingOptions } from '../scaling';

export interface MaintenanceHost {
  readonly options: ScalingOptions;
  now(): number;
  enabled(): AppProcess[];
  all(): readonly AppProcess[];
  mayIdleClean(): boolean;
  mayRecycle(): boolean;
  stop(p: AppProcess, reason: StopReason): void;
}

export class Maintenance {
  constructor(private readonly host: MaintenanceHost) {}

  /** Recycles the process when it reached max_requests (it said so, or the pool noticed); true when it does. */
  checkRequestLimit(p: AppProcess): boolean {
    const max = this.host.options.maxRequests;
    if (p.state !== 'enabled' || !this.host.mayRecycle() || max <= 0) return false;
    if (p.requests.seen() < max) return false;
    this.host.stop(p, 'max_requests');
    return true;
  }

  tick(): void {
    const now = this.host.now();
    const enabled = this.host.enabled();
    for (const p of enabled) {
      // Requests on handed-off connections are only seen as counts: activity is use.
      const taker = p.handle?.connectionTaker;
      if (!taker) continue;
      const served = taker.servedRequests();
      if (served !== p.lastServedSeen || taker.peakRequests() > 0) p.lastUsedAt = now;
      p.lastServedSeen = served;
      this.checkRequestLimit(p);
    }
    if (!this.host.mayIdleClean()) return;
    const idle = enabled.filter((p) => p.state === 'enabled').map((p) => ({ id: p.id, sessions: p.requests.inFlight(), lastUsedAt: p.lastUsedAt }));
    const ids = new Set(idleToClean(idle, now, this.host.options));
    for (const p of enabled) if (ids.has(p.id)) this.host.stop(p, 'idle');
  }

  sampleUsage(): void {
    for (const p of this.host.all()) {
      if (!p.handle || p.state === 'stopped') continue;
      p.handle.sampleUsage().then(
        (u) => {
          p.rssBytes = u.rssBytes;
          p.cpuPercent = u.cpuPercent;
          // memory_limit applies even while resisting; the process is then not replaced.
          if (p.state === 'enabled' && recycleReason({ processed: 0, rssBytes: p.rssBytes }, this.host.options) === 'memory_limit') {
            this.host.stop(p, 'memory_limit');
          }
        },
        () => undefined, // the process is gone; its exit is handled elsewhere
      );
    }
  }
}
