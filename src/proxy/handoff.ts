// The hand-off path at the public server (docs/performance.md): each accepted connection, still
// unread, goes whole to the least busy Node app process that takes connections; when none can take
// it now (no process ready, requests queued, a concurrency limit) it goes to the proxy, which
// queues and answers errors. A connection a draining process gives back, untouched between two
// requests, is routed again the same way: that is how a restart fails no kept-alive connection.

import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionSource } from '../core/leases';
import type { Logger } from '../log/logger';

/** A connection given back this many times in a row, each within BOUNCE_MS, goes to the proxy (processes dying as we hand). */
const MAX_HANDS = 3;
const BOUNCE_MS = 1000;

/**
 * Takes the server's one 'connection' listener off it and returns it (bound), for a layer in front
 * that gives it the connections it should serve. `who` names that layer in the error for a server
 * wired otherwise (a bug).
 */
export function takeConnectionListener(server: Server, who: string): (socket: Socket) => void {
  const [listener, ...others] = server.listeners('connection') as Array<(socket: Socket) => void>;
  if (!listener || others.length > 0) throw new Error(`${who}: expected exactly the HTTP server connection listener`);
  server.removeAllListeners('connection');
  return (socket) => listener.call(server, socket);
}

/**
 * Makes `server` (the proxy's HTTP server, not yet listening) hand connections off. `closing()`
 * true: a connection given back is closed, at rest, instead of routed again.
 */
export function installHandoff(
  server: Server,
  source: ConnectionSource,
  options: {
    closing(): boolean;
    logger: Logger;
    /** False while connections are crowding the cap: a handed-off connection cannot be reclaimed (connection-cap.ts). */
    mayHand?(): boolean;
    /** The socket went to an app process (true) or came back from one (false). */
    handed?(socket: Socket, away: boolean): void;
  },
): void {
  const proxyListener = takeConnectionListener(server, 'installHandoff');
  // Accepted sockets do not start reading: the first byte must be read by whoever serves them.
  (server as Server & { pauseOnConnect: boolean }).pauseOnConnect = true;

  const toProxy = (socket: Socket): void => {
    proxyListener(socket);
    socket.resume();
  };

  const route = (socket: Socket, hands: number): void => {
    if (socket.destroyed) return;
    const lease = hands < MAX_HANDS && options.mayHand?.() !== false ? source.tryAcquireConnection() : undefined;
    if (!lease) {
      toProxy(socket);
      return;
    }
    const handedAt = performance.now();
    options.handed?.(socket, true);
    lease.hand(socket, (returned, replay) => {
      options.handed?.(socket, false);
      if (!returned || options.closing()) socket.destroy();
      else if (replay) {
        // A request the proxy answers (a static file), read by the process: the proxy serves the
        // connection from now on, starting with those bytes.
        if (replay.length > 0) socket.unshift(replay);
        toProxy(socket);
      } else route(socket, performance.now() - handedAt < BOUNCE_MS ? hands + 1 : 0);
    });
  };

  server.on('connection', (socket: Socket) => {
    // holdfast's own descriptor is never read while the app has the connection; errors on it are the app's to see.
    socket.on('error', (error) => options.logger.debug({ err: error, event: 'handoff_connection_error' }, 'handed-off connection error'));
    try {
      route(socket, 0);
    } catch (error) {
      options.logger.error({ err: error, event: 'handoff_route_failed' }, 'could not route a connection');
      socket.destroy();
    }
  });
}
