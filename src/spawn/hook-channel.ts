// holdfast's end of the Node hook's IPC channel (node-hook.ts has the other end and the message
// list): readiness, load reports and, on the hand-off path, the visitor connections holdfast sends
// the process and gets back. The Rack loader speaks the same messages (loaders/rack/handoff.rb),
// directly or, for a process a preloader forked, through the preloader (ChannelRelay), and a few
// more, as it serves one request at a time (SerialHookChannel).

import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { ConnectionTaker, RequestStats } from '../core/process-handle';

export type RequestStatsListener = (stats: RequestStats) => void;

/** A flush that the process does not answer in this time resolves anyway (metrics must not hang). */
const FLUSH_TIMEOUT_MS = 250;

interface Held {
  socket: Socket;
  done: (returned: boolean, replay?: Buffer) => void;
}

/** One process's end of an IPC channel: a child holdfast started, or one a preloader forked. */
export interface ChannelEndpoint {
  readonly connected: boolean;
  send(message: object, handle: Socket | undefined, options: { keepOpen?: boolean }, callback: (error: Error | null) => void): void;
  onMessage(listener: (message: unknown) => void): void;
}

/** The IPC channel of a child holdfast started (stdio 'ipc'). */
export function childEndpoint(child: ChildProcess): ChannelEndpoint {
  child.on('error', () => undefined); // a send to a process that just died; its exit tells the story
  return {
    get connected() {
      return child.connected;
    },
    send: (message, handle, options, callback) => {
      child.send(message, handle, options, callback);
    },
    onMessage: (listener) => {
      child.on('message', listener);
    },
  };
}

/**
 * A preloader's channel, shared by the processes it forks: messages to one carry its pid, and what
 * they say comes back with theirs (loaders/rack/handoff.rb Relay).
 */
export class ChannelRelay {
  private readonly listeners = new Map<number, (message: unknown) => void>();
  private readonly channel: ChannelEndpoint;

  constructor(child: ChildProcess) {
    this.channel = childEndpoint(child);
    this.channel.onMessage((raw) => {
      const pid = (raw as { pid?: unknown } | null)?.pid;
      if (typeof pid === 'number') this.listeners.get(pid)?.(raw);
    });
  }

  endpointFor(pid: number): ChannelEndpoint {
    const channel = this.channel;
    const listeners = this.listeners;
    return {
      get connected() {
        return channel.connected && listeners.has(pid);
      },
      send: (message, handle, options, callback) => channel.send({ ...message, pid }, handle, options, callback),
      onMessage: (listener) => {
        listeners.set(pid, listener);
      },
    };
  }

  /** The process has exited: nothing more goes to it. */
  forget(pid: number): void {
    this.listeners.delete(pid);
  }
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

  /** handoff: the process takes connections from the start (one a preloader forked says no 'ready'). */
  constructor(
    private readonly endpoint: ChannelEndpoint,
    private readonly onReady: () => void,
    private readonly onStats: RequestStatsListener | undefined,
    handoff = false,
  ) {
    this.handoff = handoff;
    endpoint.onMessage((message: unknown) => this.receive(message));
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

  take(connection: unknown, done: (returned: boolean, replay?: Buffer) => void): void {
    const socket = connection as Socket;
    if (this.gone || this.draining || !this.endpoint.connected) {
      done(true);
      return;
    }
    const id = this.nextId++;
    this.held.set(id, { socket, done });
    // keepOpen: holdfast keeps its own descriptor of the connection (paused, never read), so that
    // one the process gives back, or one it never got, loses nothing and can go elsewhere.
    // socket.server is cleared so child_process does not treat this as a cluster-style shared server.
    (socket as Socket & { server: unknown }).server = null;
    this.endpoint.send({ type: 'holdfast:conn', id }, socket, { keepOpen: true }, (error) => {
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
    if (!this.handoff || this.gone || !this.endpoint.connected) return Promise.resolve();
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
    if (this.gone || !this.endpoint.connected) return;
    this.endpoint.send(message, undefined, {}, () => undefined);
  }

  private release(id: number, returned: boolean, replay?: Buffer): void {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    held.done(returned, replay);
  }

  /** It gave back connections whose request waited behind a long one (SerialHookChannel). */
  protected becameBusy(): void {}

  /** The long request is over (SerialHookChannel). */
  protected becameFree(): void {}

  private resolveFlushes(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }

  private receive(raw: unknown): void {
    if (typeof raw !== 'object' || raw === null) return; // not from the hook (an app may send its own)
    const message = raw as {
      type?: unknown;
      id?: unknown;
      elu?: unknown;
      peak?: unknown;
      served?: unknown;
      stats?: unknown;
      handoff?: unknown;
      busy?: unknown;
      proxy?: unknown;
      data?: unknown;
    };
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
        if (typeof message.id === 'number') this.release(message.id, false);
        return;
      case 'returned':
        if (typeof message.id !== 'number') return;
        if (message.busy === true) this.becameBusy();
        // proxy: the start of a request holdfast answers itself (a static file), read by the process.
        if (message.proxy === true) this.release(message.id, true, Buffer.from(typeof message.data === 'string' ? message.data : '', 'base64'));
        else this.release(message.id, true);
        return;
      case 'free':
        this.becameFree();
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

/**
 * The Rack loader's channel: it serves one request at a time, and while a request runs long it gives
 * back the connections whose next request waits and says 'free' when the call is over. Until then it
 * takes no connection and no session (core/app-process.ts isBusy, takesSession).
 */
export class SerialHookChannel extends HookChannel {
  private busy = false;
  private availableListener: (() => void) | undefined;

  busyNow(): boolean {
    return this.busy;
  }

  onAvailable(listener: () => void): void {
    this.availableListener = listener;
  }

  protected override becameBusy(): void {
    this.busy = true;
  }

  protected override becameFree(): void {
    if (!this.busy) return;
    this.busy = false;
    this.availableListener?.();
  }

  override exited(): void {
    this.busy = false;
    super.exited();
  }
}
