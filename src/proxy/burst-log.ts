// One log line per burst of the same event (queue timeouts come in floods when an app stalls):
// the first is logged in full at once; the rest are counted, and their number is logged when the
// burst is over (no such event for quietMs).

import type { Logger } from '../log/logger';

export class BurstLog {
  readonly #logger: Logger;
  readonly #event: string;
  readonly #quietMs: number;
  #suppressed = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(logger: Logger, event: string, quietMs: number) {
    this.#logger = logger;
    this.#event = event;
    this.#quietMs = quietMs;
  }

  note(fields: Record<string, unknown>, message: string): void {
    if (this.#timer === null) this.#logger.warn({ event: this.#event, ...fields }, message);
    else {
      this.#suppressed++;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => this.#end(), this.#quietMs);
    this.#timer.unref();
  }

  #end(): void {
    this.#timer = null;
    if (this.#suppressed > 0) this.#logger.warn({ event: `${this.#event}_burst_end`, more: this.#suppressed }, `${this.#suppressed} more like it since`);
    this.#suppressed = 0;
  }

  /** Logs what was counted, now (the proxy is closing). */
  flush(): void {
    if (this.#timer === null) return;
    clearTimeout(this.#timer);
    this.#end();
  }
}
