// Keep-alive connections to app processes: one TargetPool (upstream-client.ts) per address (Unix
// socket or tcp), so a process's connections are reused by the requests routed to it and can be
// closed when it drains.

import type { Session } from '../core/leases';
import type { UpstreamTarget } from '../core/process-handle';
import { TargetPool } from './upstream-client';

export function targetKey(target: UpstreamTarget): string {
  return target.kind === 'unix' ? `unix:${target.socketPath}` : `tcp:${target.host}:${target.port}`;
}

export function describeTarget(target: UpstreamTarget): string {
  return target.kind === 'unix' ? target.socketPath : `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
}

interface Entry {
  pool: TargetPool;
  /** The process last routed there. */
  pid: number;
  /** Pids seen on this target: tell a new process reusing the address from the one forgotten. */
  pids: Set<number>;
  lastUsedMs: number;
}

interface Forgotten {
  pids: ReadonlySet<number>;
  atMs: number;
}

export interface Upstream {
  pool: TargetPool;
  /** Close the connection after this exchange (the target was forgotten: its process is going). */
  reset: boolean;
}

/** How often idle connections past their time are closed. */
const IDLE_SWEEP_INTERVAL_MS = 1_000;
/** How long a pool with no connection is kept, and how long a forgotten target stays forgotten. */
const SWEEP_INTERVAL_MS = 60_000;
const FORGOTTEN_TTL_MS = 10 * 60_000;

/** An app process sent bytes after the end of an answer; its connection was closed for them. */
export type BytesAfterAnswer = (pid: number, target: UpstreamTarget, method: string, path: string) => void;

export class UpstreamPools {
  readonly #idleTimeoutMs: number;
  readonly #onBytesAfterAnswer: BytesAfterAnswer | undefined;
  readonly #pools = new Map<string, Entry>();
  // Targets whose process drains or stops: requests still routed there get a connection of their
  // own, closed after the response, so that no idle socket keeps the process's server open.
  readonly #closed = new Map<string, Forgotten>();
  readonly #retiring = new Map<TargetPool, Promise<void>>();
  readonly #sweep: NodeJS.Timeout;

  constructor(idleTimeoutMs: number, onBytesAfterAnswer?: BytesAfterAnswer) {
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#onBytesAfterAnswer = onBytesAfterAnswer;
    this.#sweep = setInterval(() => this.#sweepIdle(), IDLE_SWEEP_INTERVAL_MS);
    this.#sweep.unref();
  }

  /** The pool for a session's process. */
  for(session: Session): Upstream {
    const key = targetKey(session.target);
    const forgotten = this.#closed.get(key);
    // A pid we have not seen there is a new process that got the same address: remember it again.
    if (forgotten && forgotten.pids.size > 0 && !forgotten.pids.has(session.pid)) this.#closed.delete(key);
    let entry = this.#pools.get(key);
    if (!entry) {
      // An app may think for long or stream for long (long polling, server-sent events): there is no
      // response timeout here; the visitor's own timeouts and disconnects end such exchanges.
      const pool = new TargetPool(session.target, this.#idleTimeoutMs);
      const created: Entry = { pool, pid: session.pid, pids: new Set(), lastUsedMs: 0 };
      const report = this.#onBytesAfterAnswer;
      if (report !== undefined) pool.onBytesAfterAnswer = (method, path) => report(created.pid, pool.target, method, path);
      entry = created;
      this.#pools.set(key, entry);
    }
    entry.pid = session.pid;
    entry.pids.add(session.pid);
    entry.lastUsedMs = Date.now();
    return { pool: entry.pool, reset: this.#closed.has(key) };
  }

  /** Close the idle connections to a target now; in-flight exchanges finish on theirs. */
  closeTarget(target: UpstreamTarget): void {
    const key = targetKey(target);
    const entry = this.#pools.get(key);
    this.#closed.set(key, { pids: entry?.pids ?? new Set(), atMs: Date.now() });
    if (entry) {
      this.#pools.delete(key);
      this.#retire(entry.pool);
    }
  }

  /** Open connections to a target (idle or busy), for tests and status. */
  connections(target: UpstreamTarget): number {
    return this.#pools.get(targetKey(target))?.pool.stats.connected ?? 0;
  }

  /** Let running exchanges finish, then close every connection. */
  async close(): Promise<void> {
    clearInterval(this.#sweep);
    for (const entry of this.#pools.values()) this.#retire(entry.pool);
    this.#pools.clear();
    await Promise.all([...this.#retiring.values()]);
  }

  /** Close every connection now; running exchanges fail. */
  async destroy(): Promise<void> {
    clearInterval(this.#sweep);
    const pools = [...this.#pools.values()].map((e) => e.pool).concat([...this.#retiring.keys()]);
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }

  #retire(pool: TargetPool): void {
    // close(): no new requests, running ones finish, idle sockets close at once.
    const closing = pool
      .close()
      .then(() => {
        this.#retiring.delete(pool);
      });
    this.#retiring.set(pool, closing);
  }

  #sweepIdle(): void {
    const now = Date.now();
    for (const [key, entry] of this.#pools) {
      entry.pool.sweep(now);
      if (entry.pool.stats.connected === 0 && now - entry.lastUsedMs > SWEEP_INTERVAL_MS) {
        this.#pools.delete(key);
        this.#retire(entry.pool);
      }
    }
    for (const [key, forgotten] of this.#closed) if (now - forgotten.atMs > FORGOTTEN_TTL_MS) this.#closed.delete(key);
  }
}
