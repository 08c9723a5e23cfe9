// Loopback ports for generic apps: picking a free one for $PORT, and knowing when the app listens.

import { connect, createServer } from 'node:net';

/** A port the OS says is free on 127.0.0.1 right now (bind :0, read, close). */
export function pickFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolvePort(port) : reject(new Error('no port was assigned'))));
    });
  });
}

/** One connection attempt: true when something accepted it. */
export function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return attempt(() => connect({ host, port }), timeoutMs);
}

function attempt(open: () => ReturnType<typeof connect>, timeoutMs: number): Promise<boolean> {
  return new Promise((resolveAttempt) => {
    const socket = open();
    socket.unref();
    const done = (ok: boolean): void => {
      socket.destroy();
      resolveAttempt(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Polls until host:port accepts a connection. Resolves true when it does, false once
 * shouldStop() says to give up (the process exited, the spawn timed out or was aborted).
 */
export async function waitUntilAccepting(
  host: string,
  port: number,
  shouldStop: () => boolean,
  intervalMs = 50,
): Promise<boolean> {
  while (!shouldStop()) {
    if (await canConnect(host, port)) return !shouldStop();
    if (shouldStop()) return false;
    await new Promise<void>((r) => setTimeout(r, intervalMs).unref());
  }
  return false;
}

/**
 * Polls until the Unix socket at path accepts a connection (loaders that listen only once the app
 * is loaded, such as the Rack loader). Resolves as waitUntilAccepting does.
 */
export async function waitUntilSocketAccepts(path: string, shouldStop: () => boolean, intervalMs = 20): Promise<boolean> {
  while (!shouldStop()) {
    if (await attempt(() => connect({ path }), 1000)) return !shouldStop();
    if (shouldStop()) return false;
    await new Promise<void>((r) => setTimeout(r, intervalMs).unref());
  }
  return false;
}
