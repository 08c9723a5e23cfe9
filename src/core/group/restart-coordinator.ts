// The one restart that runs per app: it owns the active restart, the chain of superseded ones
// (a new restart waits for the one it supersedes to stop, so two never interleave), progress,
// the deadline, the outcome and the last restart for status. restart-steps.ts holds the steps.

import { SpawnError, newErrorId } from '../../errors';
import type { Clock, TimerHandle } from '../clock';
import type { RestartOutcome, RestartProgress, RestartTicket } from '../operations';
import type { RestartKind } from '../snapshots';
import type { LastRestartSnapshot, RestartSnapshot } from '../snapshots';
import { spawnErrorSnapshot } from './inspection';
import { runRestart } from './restart-steps';
import type { RestartHost, RestartResult } from './restart-steps';

export interface CoordinatorHost {
  closing(): boolean;
  /** The generation the group serves or tries now. */
  currentGeneration(): number;
  /** Raises the generation and clears what a new deploy clears; returns the new generation. */
  begin(generation: number): void;
  /** Resolves when spawns of older generations (aborted by begin) have settled, so that one spawn runs at a time; undefined when none is in flight. */
  olderSpawnsSettled(generation: number): Promise<void> | undefined;
  steps(): RestartHost;
  /** How long a restart of `total` processes may take before it gives up. */
  deadlineMs(total: number): number;
  command(): string;
  appRoot(): string;
  finished(result: RestartResult, generation: number): void;
  started?(info: { kind: RestartKind; generation: number; deadlineMs: number }): void;
  progressed?(progress: RestartProgress): void;
  ended?(outcome: RestartOutcome): void;
}

interface ActiveRestart {
  kind: RestartKind;
  generation: number;
  startedAt: number;
  deadlineAt: number;
  total: number;
  replaced: number;
  abort: AbortController;
  done: Promise<RestartOutcome>;
}

export class RestartCoordinator {
  // Invariant: at most one active restart; a superseded one is aborted and awaited before the next runs.
  private active: ActiveRestart | undefined;
  private last: LastRestartSnapshot | undefined;

  constructor(
    private readonly host: CoordinatorHost,
    private readonly clock: Clock,
  ) {}

  /** The generation being rolled out, while a restart runs. */
  get generation(): number | undefined {
    return this.active?.generation;
  }

  get running(): boolean {
    return this.active !== undefined;
  }

  /** Stops the active restart where it is; a SpawnError reason makes it end with that error. */
  abort(reason?: SpawnError): void {
    this.active?.abort.abort(reason);
  }

  start(kind: RestartKind): RestartTicket {
    const listeners: Array<(p: RestartProgress) => void> = [];
    if (this.host.closing()) {
      const outcome: RestartOutcome = { outcome: 'superseded', kind, generation: this.host.currentGeneration(), replaced: 0, total: 0, error: null };
      return { onProgress: () => undefined, done: Promise.resolve(outcome) };
    }
    const previous = this.active;
    previous?.abort.abort();
    const generation = this.host.currentGeneration() + 1;
    this.host.begin(generation);
    const abort = new AbortController();
    const now = this.clock.now();
    const state: ActiveRestart = { kind, generation, startedAt: now, deadlineAt: now, total: 0, replaced: 0, abort, done: undefined as unknown as Promise<RestartOutcome> };
    this.active = state;
    const onProgress = (progress: RestartProgress) => {
      state.total = progress.total;
      state.replaced = progress.replaced;
      this.host.progressed?.(progress);
      for (const l of listeners) l(progress);
    };
    state.done = this.run(state, previous, onProgress);
    return {
      onProgress: (l) => {
        listeners.push(l);
      },
      done: state.done,
    };
  }

  private async run(state: ActiveRestart, previous: ActiveRestart | undefined, onProgress: (p: RestartProgress) => void): Promise<RestartOutcome> {
    const { kind, generation, abort } = state;
    if (previous) await previous.done; // never interleave with the superseded one
    const settling = this.host.olderSpawnsSettled(generation);
    if (settling) await settling;
    let deadline: TimerHandle | undefined;
    let result: RestartResult;
    if (abort.signal.aborted) {
      result = { outcome: 'superseded', replaced: 0, total: 0, error: undefined };
    } else {
      const steps = this.host.steps();
      const deadlineMs = this.host.deadlineMs(Math.max(steps.oldProcesses(generation).length, steps.minInstances));
      state.deadlineAt = this.clock.now() + deadlineMs;
      this.host.started?.({ kind, generation, deadlineMs });
      deadline = this.clock.setTimeout(() => abort.abort(this.deadlineError(generation, deadlineMs)), deadlineMs);
      result = await runRestart(steps, { kind, generation, signal: abort.signal, onProgress });
    }
    deadline?.cancel();
    if (this.active === state) this.active = undefined;
    const outcome: RestartOutcome = {
      outcome: result.outcome,
      kind,
      generation,
      replaced: result.replaced,
      total: result.total,
      error: result.error ? spawnErrorSnapshot(result.error) : null,
    };
    this.last = { kind, generation, outcome: result.outcome, finished_at: new Date(this.clock.now()).toISOString(), error: outcome.error };
    this.host.finished(result, generation);
    this.host.ended?.(outcome);
    return outcome;
  }

  private deadlineError(generation: number, deadlineMs: number): SpawnError {
    return new SpawnError(`the restart to generation ${generation} did not finish within its deadline of ${Math.round(deadlineMs / 1000)} s`, {
      category: 'deadline',
      errorId: newErrorId(),
      command: this.host.command(),
      exitCode: null,
      signal: null,
      outputTail: [],
      release: this.host.appRoot(),
      generation,
      at: this.clock.now(),
    });
  }

  snapshot(): RestartSnapshot | null {
    const r = this.active;
    if (!r) return null;
    return {
      kind: r.kind,
      generation: r.generation,
      total: r.total,
      replaced: r.replaced,
      started_at: new Date(r.startedAt).toISOString(),
      deadline_at: new Date(r.deadlineAt).toISOString(),
    };
  }

  lastSnapshot(): LastRestartSnapshot | null {
    return this.last ?? null;
  }
}
