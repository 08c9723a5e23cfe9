// holdfast's end of the Node hook's IPC channel (node-hook.ts has the other end and the message
// list): readiness, load reports and, on the hand-off path, the visitor connections holdfast sends
// the process and gets back.

import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { ConnectionTaker, RequestStats } from '../core/process-handle';

export type RequestStatsListener = (stats: RequestStats) => void;

/** A flush that the process does not answer in this time resolves anyway (metrics must not hang). */
const FLUSH_TIMEOUT_MS = 250;

interface Held {
  socket: Socket;
  done: (returned: boolean) => void;
}

function isStats(value: unknown): value is RequestStats {
  const v = value as RequestStats | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    Array.isArray(v.status) &&
    Array.isArray(v.buckets) &&
    typeof v.sum === 'number' &&
    typeof v.count === 'number' &&
    v.status.every((n) => Number.isInteger(n) && n >= 0) &&
    v.buckets.every((n) => Number.isInteger(n) && n >= 0)
  );
}

export class HookChannel implements ConnectionTaker {
  private elu: number | undefined;
  private peak = 0;
  private served = 0;
  private handoff = false;
  private draining = false;
  private gone = false;
  private nextId = 1;
  private readonly held = new Map<number, Held>();
  private limitListener: (() => boolean) | undefined;
  private flushWaiters: Array<() => void> = [];

  constructor(
    private readonly child: ChildProcess,
    private readonly onReady: () => void,
    private readonly onStats: RequestStatsListener | undefined,
  ) {
    child.on('message', (message: unknown) => this.receive(message));
    child.on('error', () => undefined); // a send to a process that just died; its exit tells the story
  }

  /** Whether the app's server is an HTTP server the hook can hand connections to. */
  get takesConnections(): boolean {
    return this.handoff;
  }

  eventLoopUtilization(): number | undefined {
    return this.elu;
  }

  /** Ready without a load report yet: idle. */
  markIdle(): void {
    if (this.elu === undefined) this.elu = 0;
  }

  take(connection: unknown, done: (returned: boolean) => void): void {
    const socket = connection as Socket;
    if (this.gone || this.draining || !this.child.connected) {
      done(true);
      return;
    }
    const id = this.nextId++;
    this.held.set(id, { socket, done });
    // keepOpen: holdfast keeps its own descriptor of the connection (paused, never read), so that
    // one the process gives back, or one it never got, loses nothing and can go elsewhere.
    // socket.server is cleared so child_process does not treat this as a cluster-style shared server.
    (socket as Socket & { server: unknown }).server = null;
    this.child.send({ type: 'holdfast:conn', id }, socket, { keepOpen: true }, (error) => {
      if (error) this.release(id, true);
    });
  }

  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.sendControl({ type: 'holdfast:drain' });
  }

  peakRequests(): number {
    return this.peak;
  }

  servedRequests(): number {
    return this.served;
  }

  onLimit(listener: () => boolean): void {
    this.limitListener = listener;
  }

  shed(keep: number): void {
    if (!this.draining) this.sendControl({ type: 'holdfast:shed', keep });
  }

  flush(): Promise<void> {
    if (!this.handoff || this.gone || !this.child.connected) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(finish, FLUSH_TIMEOUT_MS);
      timer.unref();
      this.flushWaiters.push(finish);
      this.sendControl({ type: 'holdfast:flush' });
      function finish() {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  /** The process has exited: every connection it still had is over. */
  exited(): void {
    this.gone = true;
    for (const id of [...this.held.keys()]) this.release(id, false);
    this.resolveFlushes();
  }

  private sendControl(message: object): void {
    if (this.gone || !this.child.connected) return;
    this.child.send(message, undefined, {}, () => undefined);
  }

  private release(id: number, returned: boolean): void {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    held.done(returned);
  }

  private resolveFlushes(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }

  private receive(raw: unknown): void {
    if (typeof raw !== 'object' || raw === null) return; // not from the hook (an app may send its own)
    const message = raw as { type?: unknown; id?: unknown; elu?: unknown; peak?: unknown; served?: unknown; stats?: unknown; handoff?: unknown };
    switch (message.type) {
      case 'ready':
        this.handoff = message.handoff === true;
        this.onReady();
        return;
      case 'load':
        if (typeof message.elu === 'number' && message.elu >= 0 && message.elu <= 1) this.elu = message.elu;
        this.counts(message);
        return;
      case 'stats':
        this.counts(message);
        this.resolveFlushes();
        return;
      case 'closed':
      case 'returned':
        if (typeof message.id === 'number') this.release(message.id, message.type === 'returned');
        return;
      case 'limit':
        if (typeof message.served === 'number' && message.served > this.served) this.served = message.served;
        // The hook holds new requests until it hears whether it is being recycled.
        if (this.limitListener?.() !== true) this.sendControl({ type: 'holdfast:continue' });
        return;
      default:
        return;
    }
  }

  private counts(message: { peak?: unknown; served?: unknown; stats?: unknown }): void {
    if (typeof message.peak === 'number' && message.peak >= 0) this.peak = message.peak;
    if (typeof message.served === 'number' && message.served >= this.served) this.served = message.served;
    if (isStats(message.stats)) this.onStats?.(message.stats);
  }
}
