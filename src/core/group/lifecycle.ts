// A process's life after its spawn: ready, probation, death and what it means, stopping. The
// failures that matter to resistance end here, in spawnFailed() and deploymentFailed().

import type { SpawnError } from '../../errors';
import type { AppProcess, SpawnCause, StopReason } from '../app-process';
import type { ExitInfo } from '../process-handle';
import type { GroupContext } from './context';
import type { Handoff } from './handoff';
import type { Maintenance } from './maintenance';
import type { RestartCoordinator } from './restart-coordinator';
import type { Spawning } from './spawning';

export interface LifecycleParts {
  spawning(): Spawning;
  restarts(): RestartCoordinator;
  handoff(): Handoff;
  maintenance(): Maintenance;
}

export class Lifecycle {
  /** Some process of this group has ever become ready (a first start that never gets there fails). */
  everReady = false;

  constructor(
    private readonly ctx: GroupContext,
    private readonly parts: LifecycleParts,
  ) {}

  inProbation(p: AppProcess): boolean {
    return p.inProbation(this.ctx.clock.now(), this.ctx.options.probationMs);
  }

  /** The spawn succeeded: the process serves from now on. */
  ready(p: AppProcess, cause: SpawnCause): void {
    const { resistance, processes, observer } = this.ctx;
    const handle = p.handle!;
    this.everReady = true;
    resistance.rememberRelease(p.generation, handle.release);
    resistance.spawnSucceeded();
    void handle.exited.then((exit) => this.exited(p, exit));
    this.watchProbation(p);
    handle.connectionTaker?.onLimit(() => this.parts.maintenance().checkRequestLimit(p));
    // Free again after a long request: the queue may go to it now.
    handle.connectionTaker?.onAvailable?.(() => this.ctx.reconsider());
    if (!this.inProbation(p)) this.parts.handoff().rebalance(); // else once probation is over
    observer.spawned?.(p, { cause, durationMs: p.readyAt - p.spawnStartedAt });
    // A rollback step replaces one process of the broken version, if any is left.
    if (cause === 'rollback') {
      const broken = processes.enabled().find((x) => resistance.isBroken(x.generation));
      if (broken) void this.stop(broken, 'rollback');
    }
    this.ctx.reconsider();
  }

  /** The one place a failed spawn takes effect (a failed spawn, or a death in probation). */
  spawnFailed(error: SpawnError, cause: SpawnCause): void {
    const { resistance, observer } = this.ctx;
    const set = resistance.spawnFailed(error, this.ctx.closing());
    observer.spawnFailed?.(error, { cause, resisting: resistance.resisting });
    if (set) observer.resistingSet?.(error);
    this.failWaitersIfNothingServes(error);
    this.ctx.reconsider();
  }

  /** A new version failed after it booted: stop its restart where it is, freeze, bring capacity back. */
  private deploymentFailed(error: SpawnError): void {
    const { resistance, observer, processes } = this.ctx;
    const set = resistance.deploymentError(error, this.ctx.closing());
    observer.spawnFailed?.(error, { cause: 'restart', resisting: resistance.resisting });
    if (set) observer.resistingSet?.(error);
    const restarts = this.parts.restarts();
    if (restarts.running) restarts.abort(error);
    else resistance.restartResisted(Math.max(this.ctx.options.minInstances, processes.liveCount + 1));
    this.failWaitersIfNothingServes(error);
  }

  private failWaitersIfNothingServes(error: SpawnError): void {
    // Nothing serves and nothing is coming: the waiting visitors get the error page.
    const { processes } = this.ctx;
    if (processes.enabled().length === 0 && processes.spawningCount() === 0) this.ctx.queue.rejectAll(error);
  }

  private watchProbation(p: AppProcess): void {
    const timer = this.ctx.clock.setTimeout(() => {
      if (p.state === 'enabled' || p.state === 'draining') this.ctx.resistance.passedProbation(p);
      if (p.state === 'enabled') this.parts.handoff().rebalance(); // it takes connections from now on
    }, this.ctx.options.probationMs);
    void p.handle!.exited.then(() => timer.cancel());
  }

  private exited(p: AppProcess, exit: ExitInfo): void {
    const { processes, observer, resistance } = this.ctx;
    if (p.state !== 'enabled') return; // a stop in progress owns draining/stopped processes
    if (this.ctx.closing()) {
      processes.detach(p);
      observer.processDied?.(p, exit);
      return;
    }
    // Young, unless it runs the very code that already served (a fork of a proven preloader).
    const young = this.inProbation(p) && !resistance.runsProvenCode(p);
    const verdict = resistance.judgeDeath(p, {
      exit,
      restartGeneration: this.parts.restarts().generation,
      newestGeneration: this.ctx.generation(),
      command: this.parts.spawning().describeCommand(),
    });
    // Blamed on its version, not on the requests it had: a broken deploy, or a death so soon after it
    // became ready (probation) that the version is the likelier cause. Those requests may go elsewhere.
    // A fork of a preloader whose code has served is not young here: a request that kills it (a
    // poison request) is the suspect and is not retried, so it costs one process, not two.
    p.blamedOnVersion = verdict.kind === 'deployment_error' || verdict.kind === 'spawn_error' || young;
    processes.detach(p);
    observer.processDied?.(p, exit, verdict.kind === 'crash' ? { requests: verdict.requests } : undefined);
    if (verdict.kind === 'spawn_error') this.spawnFailed(verdict.error, p.cause);
    else if (verdict.kind === 'deployment_error') this.deploymentFailed(verdict.error);
    this.ctx.reconsider();
  }

  /** Resolves undefined when the process survives probation, or its SpawnError when it dies first. */
  probation(p: AppProcess): Promise<SpawnError | undefined> {
    const { clock, resistance, options } = this.ctx;
    const remaining = p.readyAt + options.probationMs - clock.now();
    if (p.state !== 'enabled' && p.state !== 'draining') {
      return Promise.resolve(resistance.lastSpawnError ?? this.parts.spawning().asSpawnError(new Error('process vanished'), p.generation));
    }
    return new Promise((resolve) => {
      let settled = false;
      const timer = clock.setTimeout(() => {
        if (settled) return;
        settled = true;
        resolve(undefined);
      }, Math.max(0, remaining));
      void p.handle!.exited.then(() => {
        if (settled) return;
        settled = true;
        timer.cancel();
        // exited() ran first (it was attached first) and recorded the error.
        resolve(resistance.lastSpawnError);
      });
    });
  }

  /** Drain (bounded by drain_timeout), then SIGTERM, then SIGKILL after the grace. Idempotent. */
  stop(p: AppProcess, reason: StopReason): Promise<void> {
    if (p.stopping) return p.stopping;
    if (p.state === 'spawning') return this.parts.spawning().abort(p);
    if (p.state === 'stopped') return Promise.resolve();
    const { processes, observer, options } = this.ctx;
    p.transition('draining');
    p.handle!.connectionTaker?.drain();
    observer.processDraining?.(p, reason);
    p.stopping = (async () => {
      await processes.waitDrained(p, options.drainTimeoutMs);
      const exit = await p.handle!.terminate(options.terminateGraceMs);
      processes.detach(p);
      observer.processStopped?.(p, reason, exit);
      this.ctx.reconsider();
    })();
    return p.stopping;
  }
}
