// The cap on visitor connections, so that a flood of them can never take the descriptors holdfast
// needs for itself (the admin API, spawning, the log) nor fail every visitor with EMFILE. Derived
// from RLIMIT_NOFILE unless max_connections says otherwise. At the cap, the oldest idle connection
// (one that is not in the middle of a request, not upgraded, not handed to an app process) is
// closed to make room, as nginx reuses its idle keep-alive connections; with none idle, the new
// connection is refused. Reaching the cap is logged once, with what to raise.

import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { HoldfastError } from '../errors';
import type { Logger } from '../log/logger';

/** For the admin API and status listeners, the log, the watchdog, stdio and Node's own. */
export const RESERVED_FDS = 64;
/** What one app process holds in holdfast: stdout, stderr, the hook channel, a readiness probe, spare. */
export const FDS_PER_PROCESS = 8;
/** Below this the fd limit is too low to serve at all. */
const MIN_CAP = 16;

/** The soft RLIMIT_NOFILE of this process (Linux: /proc/self/limits); undefined when unknown or unlimited. */
export function openFileLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m || m[1] === 'unlimited') return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

export interface CapDecision {
  cap: number;
  /** The fd limit it was derived from (undefined: unknown). */
  nofile: number | undefined;
  /** The most the fd limit allows. */
  allowed: number;
}

/**
 * The connection cap: `configured` (max_connections; 0 = derived). A visitor connection may cost two
 * descriptors (its own and one to the app process), so the derived cap is half of what is left after
 * the reserve. Throws HF_CONFIG_INVALID when max_connections asks for more than the limit allows.
 */
export function connectionCap(configured: number, maxPoolSize: number, nofile = openFileLimit()): CapDecision {
  const allowed = nofile === undefined ? 1_000_000 : Math.floor((nofile - RESERVED_FDS - FDS_PER_PROCESS * (maxPoolSize + 1)) / 2);
  const raise = 'raise the file descriptor limit (ulimit -n, or LimitNOFILE= under systemd)';
  if (allowed < MIN_CAP) {
    throw new HoldfastError('HF_CONFIG_INVALID', `the file descriptor limit (ulimit -n ${nofile}) is too low for max_pool_size ${maxPoolSize}: it leaves room for ${Math.max(0, allowed)} visitor connections, at least ${MIN_CAP} are needed; ${raise}`);
  }
  if (configured > allowed) {
    throw new HoldfastError('HF_CONFIG_INVALID', `max_connections ${configured} is more than the file descriptor limit (ulimit -n ${nofile}) allows with max_pool_size ${maxPoolSize}: at most ${allowed}; lower max_connections or ${raise}`);
  }
  return { cap: configured > 0 ? configured : allowed, nofile, allowed };
}

/** A response as the cap follows it (Node's ServerResponse, or the fast lane's): 'close' is called on it. */
export interface AnsweringResponse {
  readonly req: { readonly socket: Socket };
  once(event: 'close', listener: (this: AnsweringResponse) => void): unknown;
}

export interface ConnectionCap {
  /** Connections held now. */
  open(): number;
  /** True when the connections held are close to the cap: hand no more off (they cannot be reclaimed). */
  crowded(): boolean;
  /** The connection went to an app process: holdfast cannot tell when it is idle, so it is never closed to make room. */
  handedOff(socket: Socket): void;
  /** It came back from the app process (or went through the proxy after all). */
  takenBack(socket: Socket): void;
  /** A request began on it (Node's server reports its own): busy until `res` closes. */
  requestBegan(socket: Socket, res: AnsweringResponse): void;
  /** Idle connections closed to make room, and connections refused with none idle. */
  counts(): { reclaimed: number; refused: number };
  /** Stops the sweep of silent connections. */
  close(): void;
}

interface Tracked {
  /** Requests in flight on it (more than one only when pipelining). */
  active: number;
  /** When it came (or came back from an app process) without a request since; 0 once one came. */
  silentSince: number;
  /** Upgraded or handed off: never reclaimed. */
  pinned: boolean;
}

const CROWDED_SHARE = 0.8;
const SWEEP_MS = 1_000;

/** Installs the cap on `server` (after every other 'connection' listener is in place). */
export function installConnectionCap(server: Server, cap: CapDecision, logger: Logger, silentTimeoutMs = 0): ConnectionCap {
  const tracked = new Map<Socket, Tracked>();
  let warned = false;
  let reclaimed = 0;
  let refused = 0;

  logger.info(
    { event: 'connection_cap', max_connections: cap.cap, nofile: cap.nofile ?? null },
    `at most ${cap.cap} visitor connections at once${cap.nofile !== undefined ? ` (file descriptor limit ${cap.nofile})` : ''}`,
  );
  const listeners = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');

  const reclaimOne = (): boolean => {
    for (const [socket, t] of tracked) {
      if (t.active > 0 || t.pinned) continue;
      tracked.delete(socket);
      socket.destroy();
      reclaimed++;
      return true;
    }
    return false;
  };

  server.on('connection', (socket: Socket) => {
    if (tracked.size >= cap.cap) {
      const made = reclaimOne();
      if (!warned) {
        warned = true;
        logger.warn(
          { event: 'connection_cap_reached', max_connections: cap.cap, nofile: cap.nofile ?? null },
          `connection cap reached: ${cap.cap} visitor connections (max_connections${cap.nofile !== undefined ? `, from ulimit -n ${cap.nofile}` : ''}); the oldest idle ones are closed to make room, new ones refused when none is idle. Raise the file descriptor limit (ulimit -n, LimitNOFILE= under systemd), and max_connections if it is set`,
        );
      }
      if (!made) {
        refused++;
        socket.destroy();
        return;
      }
    }
    tracked.set(socket, { active: 0, silentSince: performance.now(), pinned: false });
    socket.once('close', () => tracked.delete(socket));
    for (const listener of listeners) listener.call(server, socket);
  });

  // Shared by every response: no closure per request.
  const onResponseClose = function (this: AnsweringResponse): void {
    const t = tracked.get(this.req.socket);
    if (t && t.active > 0) t.active--;
  };
  const requestBegan = (socket: Socket, res: AnsweringResponse): void => {
    const t = tracked.get(socket);
    if (t === undefined) return;
    t.active++;
    t.silentSince = 0;
    res.once('close', onResponseClose);
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => requestBegan(req.socket as Socket, res);
  server.prependListener('request', onRequest);
  server.prependListener('checkContinue', onRequest);
  server.prependListener('upgrade', (req: IncomingMessage) => {
    const t = tracked.get(req.socket as Socket);
    if (t) t.pinned = true;
  });

  // Node times out slow headers, never a connection that sends nothing: that is done here, as often as Node looks.
  const sweep = setInterval(() => {
    if (silentTimeoutMs <= 0) return;
    const now = performance.now();
    for (const [socket, t] of tracked) {
      if (t.silentSince === 0 || t.pinned || t.active > 0 || now - t.silentSince < silentTimeoutMs) continue;
      if (socket.bytesRead > 0) continue; // slow headers: Node answers those with 408 itself
      tracked.delete(socket);
      socket.destroy();
    }
  }, SWEEP_MS);
  sweep.unref();

  return {
    open: () => tracked.size,
    crowded: () => tracked.size >= cap.cap * CROWDED_SHARE,
    handedOff: (socket) => {
      const t = tracked.get(socket);
      if (t) t.pinned = true;
    },
    takenBack: (socket) => {
      const t = tracked.get(socket);
      if (t) {
        t.pinned = false;
        t.silentSince = performance.now();
      }
    },
    requestBegan,
    close: () => clearInterval(sweep),
    counts: () => ({ reclaimed, refused }),
  };
}
