// The proxy path's fast lane: plain HTTP/1.1 requests without a body (the bulk of web traffic) are
// read off the visitor's connection by a small hand-written parser and answered through light
// request/response objects, instead of Node's http.Server, whose per-request streams and objects
// cost more than the forwarding itself (docs/performance.md).
//
// The lane never rejects anything. A request it does not fully understand (a body, Expect, Upgrade,
// HTTP/1.0, an absolute URL, `OPTIONS *`, an odd header, a head split across reads, a file or path
// holdfast answers itself) hands the connection, from that request's first byte, to Node's
// http.Server, which serves it from then on with every check and error answer it has. So the lane
// only ever changes how fast a request is served, never how it is answered.
//
// While the lane serves a connection it reads and writes the socket's libuv handle itself (its
// `onread`, and writes as lib/net.js makes them), not through net.Socket's Readable and Writable
// streams: they cost a tick, a few events and their state for every read and every write. The
// net.Socket stays the connection's face for everything else: EOF, errors, close, `end()`, and
// Node's server when the connection goes there (its `onread` is given back first).

import { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Socket } from 'node:net';
import { B, writeToHandle, type WireHandle, type WriteRequest } from './libuv-stream';
import { WireError } from './upstream-wire';
import type { VisitorHeaders, VisitorRequest, VisitorResponse } from './visitor';

/** A head longer than this goes to Node (whose own limit, 16 KiB, then applies). */
const MAX_HEAD_BYTES = 8 * 1024;
/** Pipelined bytes held while a request is served; beyond this the connection stops being read. */
const MAX_PENDING_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
/** Methods the lane serves when they come without a body (CONNECT and the rest go to Node). */
const METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH']);
/** origin-form only: "/" then visible ASCII (RFC 9112 §3.2.1); anything else is Node's to judge. */
const ORIGIN_FORM = /^\/[\x21-\x7e]*$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value as Node accepts it: no control characters but tab. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

export interface FastHeaders {
  host?: string;
  accept?: string;
  [name: string]: string | undefined;
}

/** A request read by the lane: complete (it has no body). */
export class FastRequest implements VisitorRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: FastHeaders;
  readonly rawHeaders: string[];
  readonly socket: Socket;
  readonly complete = true;
  /** The visitor asked to close the connection after this answer. */
  readonly close: boolean;

  constructor(socket: Socket, method: string, url: string, rawHeaders: string[], headers: FastHeaders, close: boolean) {
    this.socket = socket;
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.headers = headers;
    this.close = close;
  }

  // No body: nothing to read, pause or listen to.
  resume(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  on(): this {
    return this;
  }
  off(): this {
    return this;
  }
}

/**
 * Parses one request head (latin1, without its final CRLF CRLF). Null when the lane does not serve
 * it: then Node's server gets the connection.
 */
export function parseHead(socket: Socket, text: string, requestIdHeader: string): FastRequest | null {
  const lines = text.split('\r\n');
  const requestLine = lines[0]!;
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.lastIndexOf(' ');
  if (sp1 <= 0 || sp2 <= sp1 + 1) return null;
  if (requestLine.length - sp2 !== 9 || !requestLine.endsWith(' HTTP/1.1')) return null;
  const method = requestLine.slice(0, sp1);
  if (!METHODS.has(method)) return null;
  const url = requestLine.slice(sp1 + 1, sp2);
  if (!ORIGIN_FORM.test(url)) return null;
  const raw: string[] = [];
  const headers: FastHeaders = {};
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    const value = trimOws(line.slice(colon + 1));
    if (!FIELD_VALUE.test(value)) return null;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host':
        if (headers.host !== undefined) return null;
        headers.host = value;
        break;
      case 'accept':
        headers.accept ??= value;
        break;
      case 'connection':
        for (const token of value.split(',')) {
          const t = trimOws(token).toLowerCase();
          if (t === 'close') close = true;
          else if (t !== 'keep-alive' && t !== '') return null; // names hop-by-hop headers: Node's path sorts those out
        }
        break;
      // A body, an upgrade or an expectation: Node's server.
      case 'content-length':
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
        return null;
      default:
        if (lower === requestIdHeader) headers[lower] ??= value;
    }
    raw.push(name, value);
  }
  // HTTP/1.1 requires a Host: Node answers 400 without one.
  if (headers.host === undefined) return null;
  return new FastRequest(socket, method, url, raw, headers, close);
}

// The Date header, remade once a second (as Node's server does).
let dateSecond = -1;
let dateValue = '';
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(second * 1000).toUTCString();
  }
  return dateValue;
}

const CRLF = '\r\n';
const CRLF_BUFFER = Buffer.from(CRLF, 'latin1');
/** A body chunk up to this size is copied behind the head into one buffer; a bigger one goes in a writev. */
const COPY_WITH_HEAD_BYTES = 16 * 1024;
const LAST_CHUNK = '0\r\n\r\n';

/** The answer to a FastRequest, written straight onto the visitor's socket. */
export class FastResponse implements VisitorResponse {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  shouldKeepAlive: boolean;
  readonly req: FastRequest;
  readonly #connection: FastConnection;
  #chunked = false;
  #noBody: boolean;
  /** The head, until it is written with the first body bytes or the end. */
  #head: string | null = null;
  #closed = false;
  #onClose: Array<() => void> = [];

  constructor(connection: FastConnection, req: FastRequest) {
    this.#connection = connection;
    this.req = req;
    this.shouldKeepAlive = !req.close;
    this.#noBody = req.method === 'HEAD';
  }

  get destroyed(): boolean {
    return this.#connection.socket.destroyed;
  }

  writeHead(statusCode: number, textOrHeaders: string | VisitorHeaders, maybeHeaders?: VisitorHeaders): this {
    if (this.headersSent) throw Object.assign(new Error('the response head was already sent'), { code: 'ERR_HTTP_HEADERS_SENT' });
    let text: string;
    let headers: VisitorHeaders | undefined;
    if (typeof textOrHeaders === 'string') {
      if (!FIELD_VALUE.test(textOrHeaders)) throw Object.assign(new TypeError('invalid character in the status text'), { code: 'ERR_INVALID_CHAR' });
      text = textOrHeaders;
      headers = maybeHeaders;
    } else {
      text = STATUS_CODES[statusCode] ?? 'unknown';
      headers = textOrHeaders;
    }
    let head = `HTTP/1.1 ${statusCode} ${text}\r\n`;
    let length = false;
    let date = false;
    const add = (name: string, value: string): void => {
      switch (name.length === 4 || name.length === 10 || name.length === 14 || name.length === 17 ? name.toLowerCase() : '') {
        case 'connection':
          if (/\bclose\b/i.test(value)) this.shouldKeepAlive = false;
          return; // framed for this connection below
        case 'transfer-encoding':
          return;
        case 'content-length':
          length = true;
          break;
        case 'date':
          date = true;
          break;
      }
      // Node's own checks (ServerResponse makes them too): a bad app header must not split the response.
      validateHeaderName(name);
      validateHeaderValue(name, value);
      head += `${name}: ${value}\r\n`;
    };
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) add(headers[i]!, headers[i + 1]!);
    } else if (headers !== undefined) {
      for (const name of Object.keys(headers)) add(name, String(headers[name]));
    }
    if (statusCode === 204 || statusCode === 304 || (statusCode >= 100 && statusCode < 200)) this.#noBody = true;
    // What Node's own response adds, in its order: Date, Connection (and Keep-Alive), the framing.
    if (!date) head += `Date: ${httpDate()}\r\n`;
    const lane = this.#connection.lane;
    if (this.shouldKeepAlive && !lane.options.closing()) head += lane.keepAliveHeader;
    else {
      this.shouldKeepAlive = false;
      head += 'Connection: close\r\n';
    }
    if (!length && !this.#noBody) {
      this.#chunked = true;
      head += 'Transfer-Encoding: chunked\r\n';
    }
    this.statusCode = statusCode;
    this.headersSent = true;
    // Held until the first body bytes or the end, to leave with them in one write (as Node's own
    // response holds its head).
    this.#head = `${head}\r\n`;
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.#noBody || chunk.length === 0) return true;
    const connection = this.#connection;
    const head = this.#head;
    if (!this.#chunked) {
      if (head === null) return connection.send(chunk);
      this.#head = null;
      if (chunk.length > COPY_WITH_HEAD_BYTES) return connection.send([Buffer.from(head, 'latin1'), chunk]);
      // One buffer, one write: cheaper than a writev for the small answers most are.
      const bytes = Buffer.allocUnsafe(head.length + chunk.length);
      bytes.write(head, 0, 'latin1');
      chunk.copy(bytes, head.length);
      return connection.send(bytes);
    }
    this.#head = null;
    return connection.send([Buffer.from(`${head ?? ''}${chunk.length.toString(16)}${CRLF}`, 'latin1'), chunk, CRLF_BUFFER]);
  }

  end(body?: string | Buffer): this {
    if (this.writableFinished) return this;
    if (!this.headersSent) this.writeHead(this.statusCode, []);
    if (body !== undefined && body.length > 0) this.write(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
    const head = this.#head;
    this.#head = null;
    if (head !== null || this.#chunked) this.#connection.send(`${head ?? ''}${this.#chunked ? LAST_CHUNK : ''}`);
    this.writableFinished = true;
    this.#connection.responseDone(this);
    return this;
  }

  destroy(): this {
    this.#connection.socket.destroy();
    return this;
  }

  writeContinue(): void {
    this.#connection.send('HTTP/1.1 100 Continue\r\n\r\n');
  }

  writeEarlyHints(hints: { link: string[] }): void {
    const link = hints.link.join(', ');
    if (!FIELD_VALUE.test(link)) return;
    this.#connection.send(`HTTP/1.1 103 Early Hints\r\nLink: ${link}\r\n\r\n`);
  }

  on(event: 'close' | 'drain' | 'error', listener: (...args: unknown[]) => void): this {
    if (event === 'close') this.#onClose.push(listener as () => void);
    else if (event === 'drain') this.#connection.onDrain(listener as () => void);
    // 'error': a failed write shows as the socket's error and close, reported as 'close' here.
    return this;
  }

  once(event: 'close', listener: (...args: unknown[]) => void): this {
    return this.on(event, listener);
  }

  off(_event: 'drain', listener: (...args: unknown[]) => void): this {
    this.#connection.offDrain(listener as () => void);
    return this;
  }

  /** The response is over, finished or cut: tell the listeners, once. */
  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    const listeners = this.#onClose;
    this.#onClose = [];
    for (const listener of listeners) listener.call(this);
  }
}

function closeResponse(res: FastResponse): void {
  res.closed();
}

/** A write to a visitor's handle completed after send() returned (libuv had to queue it). */
function onVisitorWriteComplete(this: WriteRequest, status: number): void {
  const connection = this.owner as FastConnection;
  this.data = null;
  this.owner = null;
  connection.written(status);
}

/**
 * The handle of a plain TCP or Unix socket, which the lane may drive itself; null for anything else,
 * and for a socket that holds bytes already read (a connection an app process gave back with the
 * request it had read, unshifted): those come as 'data', so the lane reads that one through net.Socket.
 */
function driveableHandle(socket: Socket): WireHandle | null {
  if (socket.readableLength > 0) return null;
  const handle: unknown = (socket as unknown as { _handle?: unknown })._handle;
  if (!(handle instanceof B.TCP || handle instanceof B.Pipe)) return null;
  return handle._consumed === true || typeof handle.onread !== 'function' ? null : handle;
}

export interface FastLaneOptions {
  /** Node's http.Server takes the connection (its own connection listener); the lane is done with it. */
  toNode(socket: Socket): void;
  /** A request the lane read; answered through `res`. */
  onRequest(req: FastRequest, res: FastResponse): void;
  /** Whether holdfast answers this request itself (a static file, the readiness path): Node's server does that. */
  answeredHere(method: string, url: string): boolean;
  /** Lowercase. */
  requestIdHeader: string;
  keepAliveTimeoutMs: number;
  closing(): boolean;
  /** A failure of the lane's own (a bug): the connection is closed. */
  onBug(error: unknown): void;
}

/** One visitor connection while the lane serves it. */
export class FastConnection {
  readonly socket: Socket;
  readonly lane: FastLane;
  /** Bytes read and not yet parsed: a pipelined request, read while the one before it is served. */
  #pending: Buffer | null = null;
  #current: FastResponse | null = null;
  /** The visitor sent EOF: no more requests. */
  #ended = false;
  #paused = false;
  idleSinceMs = 0;
  /** The socket's handle, read and written by the lane itself; null: through net.Socket. */
  #handle: WireHandle | null;
  /** net.Socket's own onread, for EOF and errors, and given back with the connection to Node's server. */
  #nodeOnread: WireHandle['onread'] = null;
  /** Writes libuv queued (the kernel did not take them at once) and has not finished. */
  #queuedWrites = 0;
  #onDrain: Array<() => void> = [];

  constructor(lane: FastLane, socket: Socket) {
    this.lane = lane;
    this.socket = socket;
    const handle = driveableHandle(socket);
    this.#handle = handle;
    if (handle !== null) {
      this.#nodeOnread = handle.onread;
      handle.onread = this.#onRead;
    } else socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  get busy(): boolean {
    return this.#current !== null;
  }

  /** The handle read something (called by C++, as net.Socket's onread is). */
  readonly #onRead = (arrayBuffer?: ArrayBuffer): unknown => {
    const nread = B.streamBaseState[B.kReadBytesOrError]!;
    if (nread > 0) {
      const offset = B.streamBaseState[B.kArrayBufferOffset]!;
      if (!this.socket.destroyed) this.#onData(Buffer.from(arrayBuffer!, offset, nread));
      return undefined;
    }
    if (nread === 0) return undefined;
    // EOF or a read error: net.Socket's own handling ('end', or 'error' and 'close').
    return this.#nodeOnread!.call(this.#handle, arrayBuffer);
  };

  /** Stop reading the visitor (`false`: too many pipelined bytes held) or read on (`true`). */
  #reading(on: boolean): void {
    if (this.#paused !== on) return;
    this.#paused = !on;
    const handle = this.#handle;
    if (handle === null) {
      if (on) this.socket.resume();
      else this.socket.pause();
    } else if (!this.socket.destroyed) {
      // As net.Socket drives its handle: its _read() starts it again if Node's server reads on.
      handle.reading = on;
      if (on) handle.readStart();
      else handle.readStop();
    }
  }

  /**
   * Write latin1 text, a Buffer, or Buffers in one writev, after everything written before. False
   * when the kernel did not take it all at once: the 'drain' listeners run when it has.
   */
  send(data: string | Buffer | Buffer[]): boolean {
    const socket = this.socket;
    const handle = this.#handle;
    // net.Socket sends what it holds before anything given to it later: while it holds something,
    // or once it is ended, everything goes through it.
    if (handle === null || socket.writableLength !== 0 || !socket.writable) return this.#sendThroughSocket(data);
    const written = writeToHandle(handle, data, onVisitorWriteComplete);
    if (typeof written !== 'number') {
      written.owner = this;
      this.#queuedWrites++;
      return false;
    }
    if (written === 0) return true;
    socket.destroy(new WireError(written, 'write'));
    return false;
  }

  #sendThroughSocket(data: string | Buffer | Buffer[]): boolean {
    const socket = this.socket;
    if (typeof data === 'string') return socket.write(data, 'latin1');
    if (Buffer.isBuffer(data)) return socket.write(data);
    socket.cork();
    let ok = true;
    for (const chunk of data) ok = socket.write(chunk);
    socket.uncork();
    return ok;
  }

  /** For onVisitorWriteComplete. */
  written(status: number): void {
    this.#queuedWrites--;
    if (this.socket.destroyed) return;
    if (status < 0) {
      this.socket.destroy(new WireError(status, 'write'));
      return;
    }
    if (this.#queuedWrites === 0 && this.#onDrain.length > 0) {
      for (const listener of [...this.#onDrain]) listener();
    }
  }

  /** 'drain' of what send() wrote, straight or through the socket. */
  onDrain(listener: () => void): void {
    this.#onDrain.push(listener);
    this.socket.on('drain', listener);
  }

  offDrain(listener: () => void): void {
    const at = this.#onDrain.indexOf(listener);
    if (at >= 0) this.#onDrain.splice(at, 1);
    this.socket.off('drain', listener);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#current !== null) {
      // Pipelined: served after the current answer.
      this.#pending = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
      if (this.#pending.length > MAX_PENDING_BYTES) this.#reading(false);
      return;
    }
    this.lane.busy(this);
    const data = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = null;
    this.#serve(data);
  };

  #serve(data: Buffer): void {
    try {
      const end = data.indexOf(HEAD_END);
      const req = end < 0 || end > MAX_HEAD_BYTES ? null : parseHead(this.socket, data.toString('latin1', 0, end), this.lane.options.requestIdHeader);
      if (req === null || this.lane.options.answeredHere(req.method, req.url)) {
        this.#toNode(data);
        return;
      }
      if (data.length > end + 4) this.#pending = data.subarray(end + 4);
      const res = new FastResponse(this, req);
      this.#current = res;
      this.lane.options.onRequest(req, res);
    } catch (error) {
      this.lane.options.onBug(error);
      this.socket.destroy();
    }
  }

  /** Node's server serves this connection from now on, starting with `data`. */
  #toNode(data: Buffer): void {
    const socket = this.socket;
    if (this.#handle !== null) {
      this.#handle.onread = this.#nodeOnread;
      this.#handle = null;
    } else socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
    this.lane.forget(this);
    socket.pause();
    if (data.length > 0) socket.unshift(data);
    this.lane.options.toNode(socket);
    socket.resume();
  }

  responseDone(res: FastResponse): void {
    if (res !== this.#current) return;
    this.#current = null;
    process.nextTick(closeResponse, res);
    if (!res.shouldKeepAlive) {
      // Once the answer is flushed the connection is ours to close, whatever the visitor does.
      this.socket.end(() => this.socket.destroy());
      return;
    }
    this.#reading(true);
    const pending = this.#pending;
    if (pending !== null) {
      this.#pending = null;
      // Off this stack: the answer just written may have come straight from a request's own handler.
      queueMicrotask(() => {
        if (!this.socket.destroyed && this.#current === null) this.#serve(pending);
      });
      return;
    }
    if (this.#ended) {
      this.socket.end();
      return;
    }
    this.lane.idle(this);
  }

  readonly #onEnd = (): void => {
    // As Node's server (without httpAllowHalfOpen): a visitor that ends its side has gone away,
    // whatever it was waiting for; the connection closes and so does any exchange on it.
    this.#ended = true;
    this.#pending = null;
    if (this.socket.writable) this.socket.end();
    else this.socket.destroy();
  };

  readonly #onError = (): void => {
    // ECONNRESET and the like: 'close' follows, and with it the end of the exchange.
  };

  readonly #onClose = (): void => {
    this.lane.forget(this);
    const res = this.#current;
    this.#current = null;
    this.#pending = null;
    if (res !== null) res.closed();
  };

  /** Close it now if it is between requests; true when it was. */
  closeIfIdle(): boolean {
    if (this.#current !== null) return false;
    this.socket.destroy();
    return true;
  }
}

/** The lane's state for one proxy: its connections, and the keep-alive timeout of the idle ones. */
export class FastLane {
  readonly options: FastLaneOptions;
  readonly keepAliveHeader: string;
  readonly #idle = new Set<FastConnection>();
  readonly #all = new Set<FastConnection>();
  #sweep: NodeJS.Timeout | null = null;
  readonly #sweepMs: number;

  constructor(options: FastLaneOptions) {
    this.options = options;
    const timeoutS = Math.floor(options.keepAliveTimeoutMs / 1000);
    this.keepAliveHeader = `Connection: keep-alive\r\n${timeoutS > 0 ? `Keep-Alive: timeout=${timeoutS}\r\n` : ''}`;
    this.#sweepMs = Math.max(50, Math.min(1_000, Math.floor(options.keepAliveTimeoutMs / 5)));
  }

  /** A new visitor connection (the server's 'connection' listener). */
  accept(socket: Socket): void {
    if (socket.destroyed) return;
    this.#all.add(new FastConnection(this, socket));
  }

  busy(connection: FastConnection): void {
    this.#idle.delete(connection);
  }

  /** Between requests: closed after the keep-alive timeout, or at once when the proxy is closing. */
  idle(connection: FastConnection): void {
    if (this.options.closing()) {
      connection.closeIfIdle();
      return;
    }
    connection.idleSinceMs = performance.now();
    this.#idle.add(connection);
    if (this.#sweep === null) {
      this.#sweep = setInterval(() => this.#closeExpired(), this.#sweepMs);
      this.#sweep.unref();
    }
  }

  forget(connection: FastConnection): void {
    this.#all.delete(connection);
    this.#idle.delete(connection);
  }

  #closeExpired(): void {
    const now = performance.now();
    for (const connection of this.#idle) {
      if (now - connection.idleSinceMs >= this.options.keepAliveTimeoutMs) connection.closeIfIdle();
    }
    if (this.#idle.size === 0 && this.#sweep !== null) {
      clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }

  /** The connections between requests, and those that never sent one (as Node's closeIdleConnections). */
  closeIdle(): void {
    for (const connection of [...this.#all]) connection.closeIfIdle();
  }

  /** Every connection, now. */
  destroyAll(): void {
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#sweep = null;
    for (const connection of [...this.#all]) connection.socket.destroy();
  }

  /** Connections the lane serves now. */
  size(): number {
    return this.#all.size;
  }
}
