// The abort signal of one queued request: set when its visitor goes away or max_request_queue_time
// passes. A plain object rather than an AbortController: a Node AbortSignal is an EventTarget, and
// making one and listening to it cost several microseconds per queued request on the proxy path
// (`npm run bench`, the Rack, WSGI and generic comparisons, where most requests queue).

import type { AbortSignalLike } from '../core/leases';

export class QueueAbort implements AbortSignalLike {
  #aborted = false;
  #listeners: Array<() => void> = [];

  get aborted(): boolean {
    return this.#aborted;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.#aborted) this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.#listeners.indexOf(listener);
    if (i >= 0) this.#listeners.splice(i, 1);
  }

  /** Aborts once; every listener runs once. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener();
  }
}
