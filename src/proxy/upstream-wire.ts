// One connection to an app process as a bare libuv stream handle (Node's own tcp_wrap and pipe_wrap
// bindings, what net.Socket is built on), without net.Socket's stream machinery around it.
//
// Why by hand: every request to an app that closes after each response (gunicorn's sync workers,
// any HTTP/1.0 server) opens and closes a connection, and net.Socket's Duplex stream, its event
// emitters and its ticks cost more than the system calls themselves. A client doing connect,
// request, response, close in a loop spends 188–201 µs of CPU per cycle through net.Socket and
// 109–119 µs through the bare handle (docs/performance.md, issue 14). Kept-alive connections
// save the Writable stream on every request as well.
//
// What net.Socket did and this does: connect (a TCP address or a Unix socket, with a timeout),
// writes and their completion, back-pressure (a write the kernel could not take at once is queued
// by libuv: write() says so and `drained` follows), EOF and read errors, close. Reading is not
// here: llhttp consumes the handle in C++ (upstream-client.ts), as Node's http server does, and
// only hands EOF and read errors back to `onread`.

import { lookup } from 'node:dns';
import { isIP } from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { UpstreamTarget } from '../core/process-handle';
import { B, writeToHandle, type ConnectRequest, type WireHandle, type WriteRequest } from './libuv-stream';

/** A failed system call, shaped as Node's own socket errors are (`code`, `errno`, `syscall`). */
export class WireError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(status: number, syscall: string, detail?: string) {
    const code = getSystemErrorName(status);
    super(detail ? `${syscall} ${code} ${detail}` : `${syscall} ${code}`);
    this.name = 'Error';
    this.code = code;
    this.errno = status;
    this.syscall = syscall;
  }
}

/** What a wire reports to its owner (the upstream client's Connection). */
export interface WireEvents {
  /** The app closed its end (EOF). */
  wireEnded(): void;
  /** Connecting, reading or writing failed; the wire is not closed by it. */
  wireFailed(error: Error): void;
  /** The app did not accept the connection within the connect timeout; the wire is not closed by it. */
  wireConnectTimedOut(): void;
  /** Every queued write has reached the kernel. */
  wireDrained(): void;
  /** The handle is closed (after close()): its parser may go now. */
  wireClosed(): void;
}

function onWriteComplete(this: WriteRequest, status: number): void {
  const wire = this.owner as UpstreamWire;
  const done = this.done;
  this.data = null;
  this.owner = null;
  this.done = null;
  wire.written(status, done);
}

/** One connection to one app process. */
export class UpstreamWire {
  readonly handle: WireHandle;
  readonly #events: WireEvents;
  readonly #target: UpstreamTarget;
  connecting = true;
  closed = false;
  /** Writes handed to libuv and not complete yet. */
  #pending = 0;
  #flushed: (() => void) | null = null;
  /** Writes made while connecting, [data, done, ...]: sent once connected (as net.Socket does). */
  #queued: Array<string | Buffer | Buffer[] | (() => void) | null> | null = null;
  #connectTimer: NodeJS.Timeout | null = null;

  /** Starts connecting at once; writes may follow straight away (they wait until it is connected). */
  constructor(target: UpstreamTarget, events: WireEvents, connectTimeoutMs: number) {
    this.#events = events;
    this.#target = target;
    const handle = target.kind === 'tcp' ? new B.TCP(B.tcpSocket) : new B.Pipe(B.pipeSocket);
    this.handle = handle;
    handle.onread = this.#onRead;
    // A full accept queue drops the SYN and the kernel retries for minutes: give up long before.
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = null;
      if (this.connecting && !this.closed) this.#events.wireConnectTimedOut();
    }, connectTimeoutMs);
    this.#connectTimer.unref();
    if (target.kind === 'unix') {
      this.#connected(this.handle.connect(this.#connectRequest(new B.PipeConnectWrap()), target.socketPath));
      return;
    }
    const family = isIP(target.host);
    if (family !== 0) this.#connectTcp(target.host, family, target.port);
    else {
      lookup(target.host, (error, address, family) => {
        if (this.closed) return;
        if (error) this.#failed(error);
        else this.#connectTcp(address, family, target.port);
      });
    }
  }

  #connectTcp(address: string, family: number, port: number): void {
    const req = this.#connectRequest(new B.TCPConnectWrap());
    this.#connected(family === 6 ? this.handle.connect6!(req, address, port) : this.handle.connect(req, address, port));
  }

  #connectRequest(req: ConnectRequest): ConnectRequest {
    req.oncomplete = this.#onConnect;
    return req;
  }

  /** A connect that failed at once is reported on the next tick, as a later failure would be. */
  #connected(status: number): void {
    if (status === 0) return;
    const error = this.#connectError(status);
    process.nextTick(() => this.#failed(error));
  }

  /** As Node words it: `connect ECONNREFUSED 127.0.0.1:3000`. */
  #connectError(status: number): WireError {
    const target = this.#target;
    return new WireError(status, 'connect', target.kind === 'tcp' ? `${target.host}:${target.port}` : target.socketPath);
  }

  readonly #onConnect = (status: number): void => {
    if (this.closed) return;
    this.connecting = false;
    this.#clearConnectTimer();
    if (status < 0) {
      this.#failed(this.#connectError(status));
      return;
    }
    this.handle.setNoDelay?.(true);
    this.handle.readStart();
    const queued = this.#queued;
    if (queued === null) return;
    this.#queued = null;
    for (let i = 0; i < queued.length && !this.closed; i += 2) {
      this.#pending--;
      this.#dispatch(queued[i] as string | Buffer | Buffer[], queued[i + 1] as (() => void) | null);
    }
    if (this.#pending === 0) this.#drained();
  };

  /** Only EOF and errors arrive here: the parser consumes the data. */
  readonly #onRead = (): void => {
    if (this.closed) return;
    const status = B.streamBaseState[B.kReadBytesOrError]!;
    if (status === B.uvEof) this.#events.wireEnded();
    else if (status < 0) this.#failed(new WireError(status, 'read'));
  };

  #failed(error: Error): void {
    if (!this.closed) this.#events.wireFailed(error);
  }

  /**
   * Write a latin1 string, a Buffer or several Buffers (one writev). `done` runs once the bytes are in
   * the kernel. Returns false when libuv had to queue them: `wireDrained` follows when all are out.
   */
  write(data: string | Buffer | Buffer[], done?: () => void): boolean {
    if (this.closed) return false;
    if (this.connecting) {
      (this.#queued ??= []).push(data, done ?? null);
      this.#pending++;
      return false;
    }
    return this.#dispatch(data, done ?? null);
  }

  #dispatch(data: string | Buffer | Buffer[], done: (() => void) | null): boolean {
    const written = writeToHandle(this.handle, data, onWriteComplete);
    if (typeof written !== 'number') {
      written.owner = this;
      written.done = done;
      this.#pending++;
      return false;
    }
    if (written !== 0) {
      // Reported on the next tick, as net.Socket does: never from inside the caller's write.
      const error = new WireError(written, 'write');
      process.nextTick(() => this.#failed(error));
      return false;
    }
    done?.();
    return true;
  }

  /** For onWriteComplete: an asynchronous write finished. */
  written(status: number, done: (() => void) | null): void {
    this.#pending--;
    if (this.closed) return;
    if (status < 0) {
      this.#failed(new WireError(status, 'write'));
      return;
    }
    done?.();
    if (this.#pending === 0) this.#drained();
  }

  #drained(): void {
    if (this.closed) return;
    const flushed = this.#flushed;
    this.#flushed = null;
    flushed?.();
    if (!this.closed) this.#events.wireDrained();
  }

  /** `done` once everything written so far is in the kernel (now, if it is). */
  flushed(done: () => void): void {
    if (this.#pending === 0) done();
    else this.#flushed = done;
  }

  readStop(): void {
    if (!this.closed) this.handle.readStop();
  }

  readStart(): void {
    if (!this.closed && !this.connecting) this.handle.readStart();
  }

  #clearConnectTimer(): void {
    if (this.#connectTimer !== null) {
      clearTimeout(this.#connectTimer);
      this.#connectTimer = null;
    }
  }

  /** Close the connection; queued writes are dropped. `wireClosed` follows on a later tick. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#clearConnectTimer();
    this.#flushed = null;
    this.#queued = null;
    this.handle.close(() => this.#events.wireClosed());
  }
}
