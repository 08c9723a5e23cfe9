// A SessionSource the tests steer, and real upstream HTTP servers (Unix socket or tcp) to put
// behind it: the proxy is tested against real sockets, without the pool.

import http from 'node:http';
import { once } from 'node:events';
import net from 'node:net';
import type { IncomingMessage, RequestListener, Server } from 'node:http';
import type { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AcquireOptions, Session, SessionSource } from '../../src/core/leases';
import type { UpstreamTarget } from '../../src/core/process-handle';

export interface FakeProcess {
  pid: number;
  target: UpstreamTarget;
}

export interface ClosedSession {
  pid: number;
  unreachable: boolean;
}

function abortError(): Error {
  const error = new Error('The operation was aborted');
  error.name = 'AbortError';
  return error;
}

/**
 * Hands out sessions on its first process (skipping avoidPid), records every acquire and
 * close, and fails a test on a double close. `failWith` makes the next acquires reject;
 * `hold` makes them wait until released or aborted, like a full pool.
 */
export class FakeSessionSource implements SessionSource {
  processes: FakeProcess[];
  readonly acquires: AcquireOptions[] = [];
  readonly closed: ClosedSession[] = [];
  readonly doubleCloses: number[] = [];
  readonly aborted: number[] = [];
  failWith: unknown[] = [];
  hold = false;
  /** Offer tryAcquire(), as the real group does: a session at once unless holding or failing. */
  synchronous = false;
  /** Sessions handed out by tryAcquire (also recorded in acquires, without a signal). */
  readonly synchronousAcquires: number[] = [];
  #open = 0;
  #held: Array<() => void> = [];
  #closeWaiters: Array<() => void> = [];

  constructor(processes: FakeProcess[]) {
    this.processes = processes;
  }

  /** Sessions handed out and not closed yet. */
  open(): number {
    return this.#open;
  }

  acquire(options: AcquireOptions = {}): Promise<Session> {
    this.acquires.push(options);
    const index = this.acquires.length;
    if (options.signal?.aborted) return Promise.reject(abortError());
    const failure = this.failWith.shift();
    if (failure !== undefined) return Promise.reject(failure);
    const take = (): Session => {
      const candidates = this.processes.filter((p) => p.pid !== options.avoidPid);
      if (candidates.length === 0) throw new Error('fake: no process to hand out');
      return this.#session(candidates[0]!);
    };
    if (!this.hold) return Promise.resolve().then(take);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.aborted.push(index);
        reject(abortError());
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#held.push(() => {
        options.signal?.removeEventListener('abort', onAbort);
        if (options.signal?.aborted) return;
        try {
          resolve(take());
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  tryAcquire(avoidPid?: number): Session | undefined {
    if (!this.synchronous || this.hold || this.failWith.length > 0) return undefined;
    const candidates = this.processes.filter((p) => p.pid !== avoidPid);
    if (candidates.length === 0) return undefined;
    this.acquires.push(avoidPid === undefined ? {} : { avoidPid });
    this.synchronousAcquires.push(this.acquires.length);
    return this.#session(candidates[0]!);
  }

  /** Lets the held acquires through. */
  release(): void {
    this.hold = false;
    for (const go of this.#held.splice(0)) go();
  }

  /** Resolves once `count` sessions in total have been closed. */
  async closedCount(count: number, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.closed.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} closed sessions, saw ${this.closed.length}`);
      await new Promise<void>((resolve) => {
        this.#closeWaiters.push(resolve);
        setTimeout(resolve, 50).unref();
      });
    }
  }

  #session(p: FakeProcess): Session {
    this.#open++;
    let closed = false;
    return {
      pid: p.pid,
      generation: 1,
      target: p.target,
      close: (outcome) => {
        if (closed) {
          this.doubleCloses.push(p.pid);
          return;
        }
        closed = true;
        this.#open--;
        this.closed.push({ pid: p.pid, unreachable: outcome?.unreachable ?? false });
        for (const w of this.#closeWaiters.splice(0)) w();
      },
    };
  }
}

export interface Upstream {
  target: UpstreamTarget;
  server: Server;
  /** Connections the upstream accepted so far. */
  connections(): number;
  /** Connections open right now. */
  openConnections(): number;
  requests: IncomingMessage[];
  close(): Promise<void>;
}

/** A temp dir for Unix sockets; removed by the returned function. */
export function socketDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hf-proxy-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A real node:http server on a Unix socket (a path) or on 127.0.0.1:0 (no path). */
export async function startUpstream(handler: RequestListener, socketPath?: string): Promise<Upstream> {
  const requests: IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  const sockets = new Set<Socket>();
  let accepted = 0;
  server.on('connection', (socket: Socket) => {
    accepted++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => {
    if (socketPath) server.listen(socketPath, resolve);
    else server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  const target: UpstreamTarget =
    socketPath !== undefined
      ? { kind: 'unix', socketPath }
      : { kind: 'tcp', host: '127.0.0.1', port: typeof address === 'object' && address ? address.port : 0 };
  return {
    target,
    server,
    connections: () => accepted,
    openConnections: () => sockets.size,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/**
 * A raw net server that hands each connection (numbered from 0) to `respond`: on a Unix socket in a
 * temporary dir of its own, or on `host` and a free port when given. After the test its connections
 * are destroyed, it is closed and its dir removed. `accepted`: its first connection.
 */
export async function rawServer(
  t: { after(fn: () => unknown): void },
  respond: (socket: Socket, index: number) => void,
  host?: string,
): Promise<{ target: UpstreamTarget; connections(): number; accepted: Promise<Socket> }> {
  let index = 0;
  const sockets = new Set<Socket>();
  let first!: (socket: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (first = resolve));
  const server = net.createServer((socket) => {
    first(socket);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    respond(socket, index++);
  });
  const dir = host === undefined ? socketDir() : undefined;
  if (dir !== undefined) server.listen(join(dir.dir, 'app.sock'));
  else server.listen(0, host);
  await once(server, 'listening');
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
    dir?.remove();
  });
  const target: UpstreamTarget = dir !== undefined ? { kind: 'unix', socketPath: join(dir.dir, 'app.sock') } : { kind: 'tcp', host: host!, port: (server.address() as net.AddressInfo).port };
  return { target, connections: () => index, accepted };
}

/** Polls until check() is true, or fails after timeoutMs. */
export async function eventually(check: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface ClientResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  reusedSocket: boolean;
}

/** One request with a real node:http client; resolves with the whole (small) response. */
export function request(
  port: number,
  options: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; agent?: http.Agent | false } = {},
): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), reusedSocket: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}


/** A raw connection to the proxy, for bytes no HTTP client would send. */
export async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

/** Everything read on `socket` until it closes (destroyed after `timeoutMs` if it does not), as latin1. */
export async function rawAnswer(socket: net.Socket, timeoutMs = 5_000): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  await once(socket, 'close');
  clearTimeout(timer);
  return Buffer.concat(chunks).toString('latin1');
}
