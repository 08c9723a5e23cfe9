// The requests waiting for a session, oldest first. The group decides who may take one; the queue
// only keeps the waiters, hands them out in order and lets a waiter that gives up leave.

import type { RequestInfo } from '../app-process';
import type { AbortSignalLike, Session } from '../leases';

export interface Waiter {
  readonly avoidPid: number | undefined;
  readonly request: RequestInfo | undefined;
  resolve(session: Session): void;
  reject(error: unknown): void;
}

interface Entry extends Waiter {
  cleanup(): void;
}

export function abortError(): Error {
  const err = new Error('aborted');
  err.name = 'AbortError';
  return err;
}

export class WaitQueue {
  // Invariant: an entry is here exactly until it is resolved, rejected or aborted.
  private entries: Entry[] = [];

  get length(): number {
    return this.entries.length;
  }

  /** Every waiter avoids no pid (verification: then nobody may wait while a process is free). */
  noneAvoids(): boolean {
    return this.entries.every((w) => w.avoidPid === undefined);
  }

  /** Adds a waiter; signal aborting takes it out again and rejects it with an AbortError. */
  enqueue(waiter: Waiter, signal: AbortSignalLike | undefined): void {
    const onAbort = () => {
      this.entries = this.entries.filter((w) => w !== entry);
      waiter.reject(abortError());
    };
    const entry: Entry = { ...waiter, cleanup: () => signal?.removeEventListener('abort', onAbort) };
    signal?.addEventListener('abort', onAbort, { once: true });
    this.entries.push(entry);
  }

  /** Hands waiters, oldest first, the sessions `open` gives them, until it gives none. */
  dispatch(open: (waiter: Waiter) => Session | undefined): void {
    while (this.entries.length > 0) {
      const entry = this.entries[0]!;
      const session = open(entry);
      if (!session) return;
      this.entries.shift();
      entry.cleanup();
      entry.resolve(session);
    }
  }

  rejectAll(error: unknown): void {
    const entries = this.entries;
    this.entries = [];
    for (const w of entries) {
      w.cleanup();
      w.reject(error);
    }
  }
}
