// A Control that records what the admin API asked of it. Restarts either follow a script
// (progress steps, then an outcome) or are driven by the test through the returned FakeTicket.

import type { Control, RestartOutcome, RestartProgress, RestartTicket } from '../../src/core/operations';
import type { PoolSnapshot } from '../../src/core/snapshots';
import { poolSnapshot } from './status-fixtures';

export type RecordedCall =
  | { method: 'restart'; rolling: boolean | undefined }
  | { method: 'resume' }
  | { method: 'stop' };

export interface RestartScript {
  steps: RestartProgress[];
  outcome: RestartOutcome;
  /** Between steps; default 5 ms. */
  stepMs?: number;
}

export class FakeTicket implements RestartTicket {
  private readonly listeners: Array<(p: RestartProgress) => void> = [];
  private resolveDone!: (o: RestartOutcome) => void;
  private rejectDone!: (e: unknown) => void;
  readonly done: Promise<RestartOutcome>;

  constructor() {
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => {}); // the test decides whether anyone looks
  }

  onProgress(listener: (p: RestartProgress) => void): void {
    this.listeners.push(listener);
  }

  progress(p: RestartProgress): void {
    for (const l of this.listeners) l(p);
  }

  finish(o: RestartOutcome): void {
    this.resolveDone(o);
  }

  fail(e: unknown): void {
    this.rejectDone(e);
  }
}

export class FakeControl implements Control {
  readonly calls: RecordedCall[] = [];
  readonly tickets: FakeTicket[] = [];
  resisting = false;
  pool: PoolSnapshot;
  /** When set, each restart plays it; otherwise the test drives tickets[n]. */
  script: RestartScript | null;
  private readonly onStop: () => Promise<void>;
  private readonly onCall: (call: RecordedCall) => void;

  constructor(opts: { pool?: PoolSnapshot; script?: RestartScript; onStop?: () => Promise<void>; onCall?: (call: RecordedCall) => void } = {}) {
    this.pool = opts.pool ?? poolSnapshot();
    this.script = opts.script ?? null;
    this.onStop = opts.onStop ?? (async () => {});
    this.onCall = opts.onCall ?? (() => {});
  }

  snapshot(): PoolSnapshot {
    return this.pool;
  }

  restart(options: { rolling?: boolean }): RestartTicket {
    this.record({ method: 'restart', rolling: options.rolling });
    const ticket = new FakeTicket();
    this.tickets.push(ticket);
    const script = this.script;
    if (script) void play(ticket, script);
    return ticket;
  }

  resume(): { was_resisting: boolean } {
    this.record({ method: 'resume' });
    const was = this.resisting;
    this.resisting = false;
    return { was_resisting: was };
  }

  stop(): Promise<void> {
    this.record({ method: 'stop' });
    return this.onStop();
  }

  private record(call: RecordedCall): void {
    this.calls.push(call);
    this.onCall(call);
  }
}

async function play(ticket: FakeTicket, script: RestartScript): Promise<void> {
  const wait = () => new Promise((r) => setTimeout(r, script.stepMs ?? 5));
  await wait();
  for (const step of script.steps) {
    ticket.progress(step);
    await wait();
  }
  ticket.finish(script.outcome);
}
