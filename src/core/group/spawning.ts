// Starting processes: one AppProcess per spawn, listed while it starts, aborted when it is
// outdated or the group closes, and handed to the group once ready (or its error, once failed).

import { SpawnError, newErrorId } from '../../errors';
import { AppProcess } from '../app-process';
import type { SpawnCause } from '../app-process';
import type { Clock } from '../clock';
import type { ProcessHandle } from '../process-handle';
import type { Spawner, SpawnerSnapshot } from '../spawner';
import type { ProcessList } from './process-list';
import { abortError } from './wait-queue';

export interface SpawnHost {
  closing(): boolean;
  /** A spawn that finished after its generation stopped being wanted is stopped, not attached. */
  outdated(generation: number, cause: SpawnCause): boolean;
  releaseOf(generation: number): string | undefined;
  started?(info: { generation: number; cause: SpawnCause; release: string | undefined }): void;
  /** The process is enabled; the group takes it from here. */
  ready(p: AppProcess, cause: SpawnCause): void;
  /** The one place a failed spawn is reported; the group decides what it means. */
  failed(error: SpawnError, cause: SpawnCause): void;
  /** A ready handle that is thrown away (outdated, closing). */
  discard(handle: ProcessHandle): void;
}

export class Spawning {
  // Invariant: every spawning process in the list has an entry in `aborts` and `inFlight` until
  // its spawn settles; settled spawns have none.
  private readonly aborts = new Map<AppProcess, AbortController>();
  /** Settles when the spawn of that process has settled either way. */
  private readonly inFlight = new Map<AppProcess, Promise<void>>();

  constructor(
    private readonly spawner: Spawner,
    private readonly processes: ProcessList,
    private readonly clock: Clock,
    private readonly host: SpawnHost,
    private readonly appRoot: string,
  ) {}

  describeCommand(): string {
    return this.spawner.describeCommand();
  }

  inspect(): SpawnerSnapshot | undefined {
    return this.spawner.inspect?.();
  }

  /**
   * Spawns one process of the generation and enables it. Rejects with the SpawnError (already
   * reported to the host, so callers only decide what it means for them) or an AbortError.
   */
  spawn(generation: number, cause: SpawnCause, signal?: AbortSignal): Promise<AppProcess> {
    const p = new AppProcess(generation, cause, this.clock.now());
    const spawning = this.run(p, cause, signal);
    const settled = spawning.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.set(p, settled);
    void settled.then(() => this.inFlight.delete(p));
    return spawning;
  }

  /** Aborts the spawn of this process (it is thrown away when it settles). */
  abort(p: AppProcess): Promise<void> {
    this.aborts.get(p)?.abort();
    return this.inFlight.get(p) ?? Promise.resolve();
  }

  /** Aborts every spawn of a generation older than `generation`; resolves when they have all settled (undefined: none was in flight). */
  abortOlderThan(generation: number): Promise<void> | undefined {
    const settling: Array<Promise<void>> = [];
    for (const [p, abort] of this.aborts) {
      if (p.generation < generation) {
        abort.abort();
        settling.push(this.inFlight.get(p) ?? Promise.resolve());
      }
    }
    return settling.length > 0 ? Promise.all(settling).then(() => undefined) : undefined;
  }

  /** Aborts everything in flight; resolves when it has all settled. */
  abortAll(): Promise<void> {
    for (const abort of this.aborts.values()) abort.abort();
    return Promise.all(this.inFlight.values()).then(() => undefined);
  }

  private async run(p: AppProcess, cause: SpawnCause, signal: AbortSignal | undefined): Promise<AppProcess> {
    const generation = p.generation;
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort();
    signal?.addEventListener('abort', onOuterAbort, { once: true });
    this.processes.attach(p);
    this.aborts.set(p, abort);
    // A generation keeps the release its first process came from; a new one resolves the app dir anew.
    const release = this.host.releaseOf(generation);
    this.host.started?.({ generation, cause, release });
    try {
      const handle = await this.spawner.spawn(release === undefined ? { generation, signal: abort.signal } : { generation, release, signal: abort.signal });
      // Re-check after the await: closing, aborted or outdated spawns are stopped, not attached.
      if (this.host.closing() || abort.signal.aborted || this.host.outdated(generation, cause)) {
        this.processes.detach(p);
        this.host.discard(handle);
        throw abortError();
      }
      p.enable(handle, this.clock.now());
      this.host.ready(p, cause);
      return p;
    } catch (err) {
      if (p.state === 'spawning') this.processes.detach(p);
      // A spawn that was aborted (outdated, closing) failed because of that, or no longer matters.
      if (abort.signal.aborted && !isAbort(err)) throw abortError();
      if (err instanceof SpawnError) this.host.failed(err, cause);
      // A spawner bug must not wedge the pool: treat it as an OS-level spawn error.
      else if (!isAbort(err)) this.host.failed(this.asSpawnError(err, generation), cause);
      throw err;
    } finally {
      signal?.removeEventListener('abort', onOuterAbort);
      this.aborts.delete(p);
    }
  }

  asSpawnError(err: unknown, generation: number): SpawnError {
    return new SpawnError(`could not start the app: ${err instanceof Error ? err.message : String(err)}`, {
      category: 'os',
      errorId: newErrorId(),
      command: this.spawner.describeCommand(),
      exitCode: null,
      signal: null,
      outputTail: [],
      release: this.host.releaseOf(generation) ?? this.appRoot,
      generation,
      at: this.clock.now(),
    });
  }
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}
