// Plain and rolling restarts as a step-by-step procedure over a RestartHost (the Group).
// Every step re-checks that this restart is still the current one, so a superseded restart stops
// at the next step boundary and two restarts never interleave. An abort whose reason is a
// SpawnError (a new process died, the deadline passed) ends the restart with that error.

import { SpawnError } from '../../errors';
import type { AppProcess } from '../app-process';
import type { RestartProgress } from '../operations';
import type { RestartKind, RestartOutcomeKind } from '../snapshots';

export interface RestartHost {
  readonly minInstances: number;
  /** Processes of generations older than this one that still serve (enabled). */
  oldProcesses(generation: number): AppProcess[];
  /** Processes of this generation that serve or are starting. */
  currentProcesses(generation: number): AppProcess[];
  /** Spawns one process of the generation; rejects with SpawnError (already recorded by the host) or AbortError. */
  spawnFor(generation: number, signal: AbortSignal): Promise<AppProcess>;
  /** Resolves undefined once the process has been up for the probation period, or the SpawnError if it died first. */
  probation(process: AppProcess): Promise<SpawnError | undefined>;
  /** Drain and stop; resolves when it is gone. */
  stop(process: AppProcess): Promise<void>;
  /** Whether one more process fits now: under max_pool_size, or over it by at most rolling_restart_surge. */
  hasRoom(): boolean;
  /** Whether the host is resisting deployment errors now (decides failed vs resisted). */
  resisting(): boolean;
}

export interface RestartResult {
  outcome: RestartOutcomeKind;
  replaced: number;
  total: number;
  error: SpawnError | undefined;
}

export interface RestartRunOptions {
  kind: RestartKind;
  generation: number;
  signal: AbortSignal;
  onProgress(progress: RestartProgress): void;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/** Runs one restart to its end. Never rejects: the result says how it ended. */
export async function runRestart(host: RestartHost, o: RestartRunOptions): Promise<RestartResult> {
  const old = host.oldProcesses(o.generation);
  const total = Math.max(old.length, host.minInstances);
  let replaced = 0;
  const progress = () => o.onProgress({ kind: o.kind, generation: o.generation, total, replaced });
  const ended = (outcome: RestartOutcomeKind, error?: SpawnError): RestartResult => ({ outcome, replaced, total, error });
  const failed = (err: unknown): RestartResult => {
    const reason: unknown = o.signal.aborted ? o.signal.reason : err;
    if (reason instanceof SpawnError) return ended(host.resisting() ? 'resisted' : 'failed', reason);
    if (o.signal.aborted || isAbort(err)) return ended('superseded');
    throw err;
  };
  const stopped = (): RestartResult | undefined => (o.signal.aborted ? failed(o.signal.reason) : undefined);
  progress();

  if (o.kind === 'plain') {
    // Everything old goes first; requests queue meanwhile (the Passenger plain restart).
    await Promise.all(old.map((p) => host.stop(p)));
    const started: AppProcess[] = [];
    while (host.currentProcesses(o.generation).length < total) {
      const end = stopped();
      if (end) return end;
      try {
        started.push(await host.spawnFor(o.generation, o.signal));
      } catch (err) {
        return failed(err);
      }
      replaced++;
      progress();
    }
    const deaths = await Promise.all(started.map((p) => host.probation(p)));
    const died = deaths.find((e) => e !== undefined);
    if (died) return failed(died);
    return stopped() ?? ended('succeeded');
  }

  // Rolling: for each old process, a new one first; the old one goes only once the new one has
  // passed probation, so a version that crashes right after booting never costs capacity. At
  // max_pool_size the pool runs over it by rolling_restart_surge for one replacement; with no
  // surge allowed, one old process is retired first (capacity dips by one for the replacement).
  for (;;) {
    const end = stopped();
    if (end) return end;
    const remaining = host.oldProcesses(o.generation);
    const needMore = host.currentProcesses(o.generation).length < host.minInstances;
    if (remaining.length === 0 && !needMore) break;
    const retireFirst = remaining.length > 0 && !host.hasRoom();
    if (retireFirst) {
      await host.stop(pickNextToRetire(remaining));
      const end = stopped();
      if (end) return end;
    }
    let fresh: AppProcess;
    try {
      fresh = await host.spawnFor(o.generation, o.signal);
    } catch (err) {
      return failed(err);
    }
    // A deployment error elsewhere (another new process died) stops the restart where it is.
    const death = await untilAborted(host.probation(fresh), o.signal);
    if (death) return failed(death);
    const cut = stopped();
    if (cut && o.signal.reason instanceof SpawnError) return cut;
    // The new process took its old one's place: retire that one even if this restart was superseded
    // meanwhile, or the next restart would find one process too many and keep it.
    if (!retireFirst) {
      const stillOld = host.oldProcesses(o.generation);
      if (stillOld.length > 0 && !(o.signal.aborted && o.signal.reason instanceof SpawnError)) await host.stop(pickNextToRetire(stillOld));
    }
    const after = stopped();
    if (after) return after;
    replaced = Math.min(total, replaced + 1);
    progress();
  }
  return ended('succeeded');
}

/** The probation wait, or undefined as soon as the restart is aborted. */
function untilAborted(probation: Promise<SpawnError | undefined>, signal: AbortSignal): Promise<SpawnError | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    void probation.then((death) => {
      signal.removeEventListener('abort', onAbort);
      resolve(death);
    });
  });
}

/** The old process to retire next: the one with the fewest requests in flight, then the oldest generation. */
export function pickNextToRetire(processes: readonly AppProcess[]): AppProcess {
  let best = processes[0]!;
  for (const p of processes) {
    const a = p.requests.inFlight();
    const b = best.requests.inFlight();
    if (a < b || (a === b && p.generation < best.generation)) best = p;
  }
  return best;
}
