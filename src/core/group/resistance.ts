// Deployment error resistance: the one place that answers "may we spawn for this cause now?",
// "may we idle-clean or recycle?", and what a failed spawn or a death means. It keeps the flag and
// its error, the back-off, the releases of every generation, the last generation that served, the
// broken one, the replacements owed while frozen and the capacity a rollback restores.
//
// The rules (docs/configuration.md, "Deployment error resistance"):
// - any spawn error sets the flag (with resist_deployment_errors); while it is set nothing spawns
//   but replacements of processes of a version that served, from their own release; a rollback
//   to the pool's size from the last release that served; and, with nothing left, one recovery at
//   a time with back-off;
// - a process of the generation being rolled out that dies before its restart has finished is a
//   deployment error, whenever it dies;
// - after a restart, CRASH_LOOP_DEATHS deaths of the new generation's processes, each within
//   CRASH_LOOP_WINDOW_MS of becoming ready, within CRASH_LOOP_WATCH_MS of the restart, are one too;
// - a process that dies while serving a request it had received is a crash: never a spawn error;
// - otherwise a death within probation_time is a failed spawn, and a later one a plain death.

import type { SpawnError } from '../../errors';
import type { AppProcess, RequestInfo, SpawnCause } from '../app-process';
import type { Clock, TimerHandle } from '../clock';
import type { ExitInfo } from '../process-handle';
import { spawnBackoffMs } from '../scaling';
import { deathError, probationError } from './death-errors';

export const CRASH_LOOP_DEATHS = 3;
export const CRASH_LOOP_WINDOW_MS = 60_000;
export const CRASH_LOOP_WATCH_MS = 10 * 60_000;

export interface ResistanceOptions {
  resistDeploymentErrors: boolean;
  probationMs: number;
  minInstances: number;
  appRoot: string;
}

/** What a death means. */
export type DeathVerdict =
  /** A process of a version that served died while frozen: replace it from `generation`'s release, or not. */
  | { kind: 'frozen'; replace: boolean }
  /** The new version failed: a death during its rolling restart, or a crash loop after it. */
  | { kind: 'deployment_error'; error: SpawnError }
  /** Died within probation_time with no request in flight: a failed spawn. */
  | { kind: 'spawn_error'; error: SpawnError }
  /** Died while serving requests it had received: the requests' fault until proven otherwise. */
  | { kind: 'crash'; requests: RequestInfo[] }
  | { kind: 'died' };

export interface DeathContext {
  exit: ExitInfo;
  /** The generation of the restart in progress, if any. */
  restartGeneration: number | undefined;
  /** The newest generation (the one a restart last rolled out or tried to). */
  newestGeneration: number;
  command: string;
}

/** What the group looks like to the spawn planner while resisting. */
export interface PlanView {
  enabled: number;
  spawning: number;
  restarting: boolean;
  /** Enabled or spawning processes of generations that are not broken. */
  healthy: number;
  /** Whether one more process fits (max_pool_size, plus the surge for a rollback). */
  room: boolean;
}

export interface SpawnPlan {
  generation: number;
  cause: SpawnCause;
}

interface Flag {
  error: SpawnError;
  since: number;
}

export class Resistance {
  // Invariant: flag set => resistDeploymentErrors; brokenGeneration set => flag set.
  private flag: Flag | undefined;
  /** The last spawn error of any kind (status shows it; hopeless requests get it). */
  lastSpawnError: SpawnError | undefined;
  private consecutiveFailures = 0;
  private backoffUntil = 0;
  /** The release (resolved app dir) each generation was started from. */
  private readonly releases = new Map<number, string>();
  /** Generations that had a process pass probation; the newest of them not broken is the version that served. */
  private readonly servedGenerations = new Set<number>();
  /** Preloaders (pids) that forked a process which passed probation: the code they loaded serves. */
  private readonly provenPreloaders = new Set<number>();
  /** New processes (start, demand, replacement) are spawned from this generation. */
  private spawnGeneration = 1;
  /** The generation a deployment error was declared against, with the release it came from. */
  private broken: { generation: number; release: string; byDeath: boolean } | undefined;
  /** Generations of died processes to replace while frozen (from their own release). */
  private pendingReplacements: number[] = [];
  /** The pool's size before the failed deploy: a rollback restores it. 0 = no rollback owed. */
  private capacityTarget = 0;
  /** When each generation's restart finished, for the crash-loop rule. */
  private readonly deployedAt = new Map<number, number>();
  private readonly earlyDeaths = new Map<number, number>();
  private recoveryTimer: TimerHandle | undefined;

  constructor(
    private readonly options: ResistanceOptions,
    private readonly clock: Clock,
  ) {}

  get resisting(): boolean {
    return this.flag !== undefined;
  }

  get error(): SpawnError | undefined {
    return this.flag?.error;
  }

  // ---- generations and releases -------------------------------------------------------------

  releaseOf(generation: number): string | undefined {
    return this.releases.get(generation);
  }

  /** A generation keeps the release its first ready process came from. */
  rememberRelease(generation: number, release: string): void {
    if (!this.releases.has(generation)) this.releases.set(generation, release);
  }

  /** The generation a spawn for this cause starts from (a restart names its own). */
  generationFor(cause: SpawnCause, newest: number): number {
    if (cause === 'rollback') return this.lastGoodGeneration;
    if (cause === 'recovery') {
      // The old release first; after it failed too, whatever the app dir holds now.
      const useOld = this.lastGoodGeneration > 0 && this.consecutiveFailures % 2 === 1;
      return useOld ? this.lastGoodGeneration : newest;
    }
    // Without resistance a spawn tries whatever the newest deploy is, as Passenger does.
    return this.options.resistDeploymentErrors ? this.spawnGeneration : newest;
  }

  /** Routing prefers the newest generation, but never one known to be broken. */
  isBroken(generation: number): boolean {
    return this.broken?.generation === generation;
  }

  passedProbation(p: AppProcess): void {
    this.servedGenerations.add(p.generation);
    const preloader = p.handle?.loadedBy;
    if (preloader !== undefined) this.provenPreloaders.add(preloader);
  }

  /**
   * Whether the process runs code that has already served past probation: it was forked by a
   * preloader that forked a process which passed it. Its early death is then not its version's fault.
   */
  runsProvenCode(p: AppProcess): boolean {
    const preloader = p.handle?.loadedBy;
    return preloader !== undefined && this.provenPreloaders.has(preloader);
  }

  /** The newest generation that served and is not broken (0: none). */
  private get lastGoodGeneration(): number {
    let best = 0;
    for (const g of this.servedGenerations) if (g > best && !this.isBroken(g)) best = g;
    return best;
  }

  // ---- decisions ----------------------------------------------------------------------------

  /** Whether a spawn for this cause may start now (the planner and the restart decide when). */
  maySpawn(cause: SpawnCause): boolean {
    if (this.flag) return cause === 'replace' || cause === 'recovery' || cause === 'rollback';
    if (cause === 'demand' || cause === 'replace') return !this.backingOff();
    return true;
  }

  /** Idle processes are kept while frozen. */
  mayIdleClean(): boolean {
    return !this.flag;
  }

  /** max_requests recycling is off while frozen (memory_limit still applies, without replacement). */
  mayRecycle(): boolean {
    return !this.flag;
  }

  backingOff(): boolean {
    return this.clock.now() < this.backoffUntil;
  }

  /**
   * The error a new request gets at once because nothing serves and nothing is on its way: the
   * last spawn error, while frozen or until its back-off has passed.
   */
  hopelessError(): SpawnError | undefined {
    if (!this.lastSpawnError) return undefined;
    if (!this.flag && !this.backingOff()) return undefined;
    return this.lastSpawnError;
  }

  /**
   * While frozen: the next spawn owed, if any. Replacements of frozen processes come at once; a
   * rollback step or, with nothing left, a recovery wait for the back-off of the last failure
   * (wake() is armed to look again then).
   */
  plan(view: PlanView, newest: number, wake: () => void): SpawnPlan | undefined {
    if (!this.flag || view.spawning > 0) return undefined;
    while (this.pendingReplacements.length > 0) {
      const generation = this.pendingReplacements.shift()!;
      if (this.mayReplaceFrom(generation)) return { generation, cause: 'replace' };
    }
    const rollback = this.capacityTarget > 0 && view.healthy < this.capacityTarget && view.room && this.rollbackRelease() !== undefined;
    const recovery = view.enabled === 0 && !view.restarting;
    if (!rollback && !recovery) return undefined;
    if (this.backingOff()) {
      this.wakeAfterBackoff(wake);
      return undefined;
    }
    if (rollback) return { generation: this.lastGoodGeneration, cause: 'rollback' };
    return { generation: this.generationFor('recovery', newest), cause: 'recovery' };
  }

  private wakeAfterBackoff(wake: () => void): void {
    if (this.recoveryTimer) return;
    this.recoveryTimer = this.clock.setTimeout(() => {
      this.recoveryTimer = undefined;
      wake();
    }, Math.max(0, this.backoffUntil - this.clock.now()));
  }

  /** The release a rollback starts from: the last generation that served, when it is not the broken one's. */
  rollbackRelease(): string | undefined {
    if (!this.broken || this.lastGoodGeneration === 0) return undefined;
    const release = this.releases.get(this.lastGoodGeneration);
    return release !== undefined && release !== this.broken.release ? release : undefined;
  }

  /**
   * A frozen process is put back from its own release, unless that release is the broken one and
   * the broken version boots and then dies (a plain app dir after a late crash): that would only
   * bring the crash back. A release that failed to boot costs a failed spawn at worst.
   */
  private mayReplaceFrom(generation: number): boolean {
    if (!this.broken?.byDeath) return true;
    return this.releases.get(generation) !== this.broken.release;
  }

  // ---- events -------------------------------------------------------------------------------

  spawnSucceeded(): void {
    this.consecutiveFailures = 0;
    this.backoffUntil = 0;
  }

  /** A spawn failed (any cause). Returns true when this set the flag. */
  spawnFailed(error: SpawnError, closing: boolean): boolean {
    this.lastSpawnError = error;
    this.consecutiveFailures++;
    this.backoffUntil = this.clock.now() + spawnBackoffMs(this.consecutiveFailures);
    if (error.details.generation > this.lastGoodGeneration && error.details.generation !== this.spawnGeneration) {
      // A new version that never booted: the version that serves stays the one to spawn from.
      this.broken ??= { generation: error.details.generation, release: error.details.release, byDeath: false };
    }
    return this.raise(error, closing);
  }

  /**
   * A new version failed after it booted (a death during its restart, a crash loop): it is broken,
   * processes are spawned from the last version that served, and capacity is brought back from it.
   * Returns true when this set the flag.
   */
  deploymentError(error: SpawnError, closing: boolean): boolean {
    this.lastSpawnError = error;
    this.broken = { generation: error.details.generation, release: error.details.release, byDeath: true };
    if (this.spawnGeneration === error.details.generation && this.lastGoodGeneration > 0 && this.lastGoodGeneration !== error.details.generation) {
      this.spawnGeneration = this.lastGoodGeneration;
    }
    return this.raise(error, closing);
  }

  private raise(error: SpawnError, closing: boolean): boolean {
    if (!this.options.resistDeploymentErrors || closing || this.flag) return false;
    this.flag = { error, since: this.clock.now() };
    return true;
  }

  /** A restart to `generation` begins: the administrator acted, so the flag goes and everything is tried anew. Returns whether it was set. */
  restartBegan(): boolean {
    const was = this.flag !== undefined;
    this.flag = undefined;
    this.broken = undefined;
    this.consecutiveFailures = 0;
    this.backoffUntil = 0;
    this.pendingReplacements = [];
    this.capacityTarget = 0;
    this.cancelRecovery();
    return was;
  }

  /** The restart rolled the generation out: new processes come from it from now on. */
  restartSucceeded(generation: number): void {
    this.spawnGeneration = generation;
    this.deployedAt.set(generation, this.clock.now());
  }

  /** The restart failed with the flag set: bring the pool back to `size` from the last release that served. */
  restartResisted(size: number): void {
    if (this.flag) this.capacityTarget = Math.max(size, this.options.minInstances);
  }

  /** `holdfast resume`: clears the flag; capacity comes back from the version that serves, never the broken one. */
  resume(): boolean {
    const was = this.flag !== undefined;
    this.flag = undefined;
    this.consecutiveFailures = 0;
    this.backoffUntil = 0;
    this.pendingReplacements = [];
    this.capacityTarget = 0;
    this.cancelRecovery();
    if (this.broken && this.lastGoodGeneration > 0) this.spawnGeneration = this.lastGoodGeneration;
    return was;
  }

  /** What a death of an enabled process means; records what it owes (replacement, crash-loop count). */
  judgeDeath(p: AppProcess, ctx: DeathContext): DeathVerdict {
    const now = this.clock.now();
    if (this.flag && !this.isBroken(p.generation) && p.generation !== ctx.restartGeneration) {
      const replace = this.mayReplaceFrom(p.generation);
      if (replace) this.pendingReplacements.push(p.generation);
      return { kind: 'frozen', replace };
    }
    if (ctx.restartGeneration !== undefined && p.generation === ctx.restartGeneration) {
      return { kind: 'deployment_error', error: deathError(p, ctx, this.clock.now(), this.options.appRoot, 'before its rolling restart finished', p.inProbation(now, this.options.probationMs) ? 'probation' : 'died') };
    }
    if (this.countsForCrashLoop(p, now, ctx.newestGeneration)) {
      const deaths = (this.earlyDeaths.get(p.generation) ?? 0) + 1;
      this.earlyDeaths.set(p.generation, deaths);
      if (deaths >= CRASH_LOOP_DEATHS) {
        return { kind: 'deployment_error', error: deathError(p, ctx, this.clock.now(), this.options.appRoot, `after the restart: ${deaths} of its processes died within ${CRASH_LOOP_WINDOW_MS / 1000} s of starting (a crash loop)`, 'died') };
      }
    }
    const requests = p.requestsInFlight(now);
    if (requests.length > 0 || p.requests.inFlight() > 0) return { kind: 'crash', requests };
    if (p.inProbation(now, this.options.probationMs)) return { kind: 'spawn_error', error: probationError(p, ctx, this.clock.now(), this.options.appRoot) };
    return { kind: 'died' };
  }

  private countsForCrashLoop(p: AppProcess, now: number, newest: number): boolean {
    const deployed = this.deployedAt.get(p.generation);
    if (p.generation !== newest || deployed === undefined || this.isBroken(p.generation)) return false;
    return now - deployed <= CRASH_LOOP_WATCH_MS && now - p.readyAt <= CRASH_LOOP_WINDOW_MS;
  }

  cancelRecovery(): void {
    this.recoveryTimer?.cancel();
    this.recoveryTimer = undefined;
  }

  // ---- inspection ----------------------------------------------------------------------------

  /** What status shows of the freeze (inspection.ts renders it); null when not resisting. */
  view(serving: number): { error: SpawnError; since: number; serving: number; target: number; rollbackRelease: string | null; broken: boolean } | null {
    if (!this.flag) return null;
    return { error: this.flag.error, since: this.flag.since, serving, target: Math.max(this.capacityTarget, serving), rollbackRelease: this.rollbackRelease() ?? null, broken: this.broken !== undefined };
  }
}
