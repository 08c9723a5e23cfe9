// Keep-alive connections to app processes: one undici Pool per target (Unix socket or tcp), so a
// process's connections are reused by the requests routed to it and can be closed when it drains.

import type { Pool as PoolType } from 'undici';

// Only the Pool, not undici's index: the index also loads fetch, WebSocket, the caches and the
// mocks, ~8 MB of holdfast's idle RSS that the proxy never uses (the goal is < 80 MB). undici is
// pinned to an exact version, and a unit test checks this path still gives undici's own Pool.
const Pool = require('undici/lib/dispatcher/pool') as typeof PoolType;
type Pool = PoolType;
import type { Session } from '../core/leases';
import type { UpstreamTarget } from '../core/process-handle';

export function targetKey(target: UpstreamTarget): string {
  return target.kind === 'unix' ? `unix:${target.socketPath}` : `tcp:${target.host}:${target.port}`;
}

export function describeTarget(target: UpstreamTarget): string {
  return target.kind === 'unix' ? target.socketPath : `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
}

function newPool(target: UpstreamTarget, idleTimeoutMs: number): Pool {
  const options: PoolType.Options = {
    pipelining: 1, // never pipeline to an app: one slow response would hold up the others
    keepAliveTimeout: idleTimeoutMs,
    keepAliveMaxTimeout: idleTimeoutMs,
    // An app may think for long or stream for long (long polling, server-sent events); the
    // visitor's own timeouts and disconnects end such exchanges, not a guess made here.
    headersTimeout: 0,
    bodyTimeout: 0,
  };
  if (target.kind === 'unix') return new Pool('http://localhost', { ...options, socketPath: target.socketPath });
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return new Pool(`http://${host}:${target.port}`, options);
}

interface Entry {
  pool: Pool;
  /** Pids seen on this target: tell a new process reusing the address from the one forgotten. */
  pids: Set<number>;
  lastUsedMs: number;
}

interface Forgotten {
  pids: ReadonlySet<number>;
  atMs: number;
}

export interface Upstream {
  pool: Pool;
  /** Close the connection after this exchange (the target was forgotten: its process is going). */
  reset: boolean;
}

/** How long a pool with no connection is kept, and how long a forgotten target stays forgotten. */
const SWEEP_INTERVAL_MS = 60_000;
const FORGOTTEN_TTL_MS = 10 * 60_000;

export class UpstreamPools {
  readonly #idleTimeoutMs: number;
  readonly #pools = new Map<string, Entry>();
  // Targets whose process drains or stops: requests still routed there get a connection of their
  // own, closed after the response, so that no idle socket keeps the process's server open.
  readonly #closed = new Map<string, Forgotten>();
  readonly #retiring = new Map<Pool, Promise<void>>();
  readonly #sweep: NodeJS.Timeout;

  constructor(idleTimeoutMs: number) {
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#sweep = setInterval(() => this.#sweepIdle(), SWEEP_INTERVAL_MS);
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
      entry = { pool: newPool(session.target, this.#idleTimeoutMs), pids: new Set(), lastUsedMs: 0 };
      this.#pools.set(key, entry);
    }
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

  #retire(pool: Pool): void {
    // close(): no new requests, running ones finish, idle sockets close at once.
    const closing = pool
      .close()
      .catch(() => undefined)
      .then(() => {
        this.#retiring.delete(pool);
      });
    this.#retiring.set(pool, closing);
  }

  #sweepIdle(): void {
    const now = Date.now();
    for (const [key, entry] of this.#pools) {
      const { connected, running, pending } = entry.pool.stats;
      if (connected === 0 && running === 0 && pending === 0 && now - entry.lastUsedMs > SWEEP_INTERVAL_MS) {
        this.#pools.delete(key);
        this.#retire(entry.pool);
      }
    }
    for (const [key, forgotten] of this.#closed) if (now - forgotten.atMs > FORGOTTEN_TTL_MS) this.#closed.delete(key);
  }
}
