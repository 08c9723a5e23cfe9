// holdfast's own HTTP/1.1 client to app processes: the proxy path's hot half, hand-written because
// undici cost ~100 µs of CPU per request on top of the visitor's side (docs/performance.md), and
// because the connection policy has to suit servers that serve one request at a time.
//
// One TargetPool per process address. The policy:
// - no pipelining: one exchange per connection at a time;
// - idle connections are reused last-in first-out: a single-threaded server (puma -t 1:1, a Rack
//   or WSGI loader) waits on the connection it answered last for the next request (puma for up to
//   200 ms before it looks at its other sockets), so the next request goes there and never sits
//   behind a kept-alive connection the server is not going to serve; with one session at a time
//   per process that is one connection, reused for ever;
// - a request that finds every connection to its process busy waits up to WAIT_FOR_CONNECTION_MS
//   for one of them to be free, and takes it (oldest first) before a new one is opened: with the
//   default concurrency 0, the requests for a single-threaded server wait here and go on the
//   connection it answered last, instead of waiting unread in its accept queue on connections of
//   their own (puma -t 1:1 takes a new connection only when it has nothing else to do); a server
//   that serves many at once gets a new connection after that wait;
// - a response that says `Connection: close` (gunicorn's sync workers, HTTP/1.0) or ends at EOF
//   closes its connection; to such an app the next connection is opened while the current request
//   is served, so that it waits in the app's accept queue and the app never waits for us to connect;
// - when the app goes silent (no byte of any answer for SILENT_APP_MS) while requests wait for
//   their answers on some of its connections and others sit idle here, the idle ones are closed: a
//   server that serves one connection at a time may be waiting on one of them (puma -t 1:1 for
//   200 ms after each answer, a blocking HTTP/1.1 server until it closes) while the requests it has
//   not read wait in its accept queue; the close lets it move on at once;
// - an idle connection is closed after the idle timeout, or earlier when the app announced a
//   shorter `Keep-Alive: timeout=N`; a request that finds a reused connection closed under it
//   before any answer (the keep-alive race) is sent once more on a fresh connection when it can be
//   replayed (no body, or one read whole beforehand) and is idempotent (a POST or PATCH only when
//   it could not be written at all), so a live app never costs a visitor an error for it and never
//   gets a request twice that it may have acted on.
//
// Each connection is a bare libuv handle (upstream-wire.ts), not a net.Socket: opening and closing
// one per request (gunicorn) costs a net.Socket's whole stream machinery every time. Responses are
// parsed by llhttp, Node's own HTTP parser (the one its http module uses), through `_http_common`,
// reading the handle in C++; bodies are forwarded as they arrive, with back-pressure both ways.

import type { Readable } from 'node:stream';
import type { UpstreamTarget } from '../core/process-handle';
import { UpstreamWire, type WireEvents } from './upstream-wire';

/** llhttp as Node's http module binds it (lib/_http_common.js); the parts used here. */
interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(data: Buffer): number | Error;
  /** Read straight from the connection's handle in C++, as Node's http server does: no 'data' events. */
  consume(handle: unknown): void;
  finish(): number | Error | undefined;
  close(): void;
  [callback: number]: unknown;
}
interface LlhttpModule {
  HTTPParser: {
    new (): LlhttpParser;
    RESPONSE: number;
    kOnMessageBegin: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kOnExecute: number;
  };
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { HTTPParser } = require('_http_common') as LlhttpModule;
const kOnMessageBegin = HTTPParser.kOnMessageBegin | 0;
const kOnHeaders = HTTPParser.kOnHeaders | 0;
const kOnHeadersComplete = HTTPParser.kOnHeadersComplete | 0;
const kOnBody = HTTPParser.kOnBody | 0;
const kOnMessageComplete = HTTPParser.kOnMessageComplete | 0;
const kOnExecute = HTTPParser.kOnExecute | 0;

/** What one exchange reports, in order: connect, (request sent), headers (1xx ones too), data..., complete | error. */
export interface ExchangeHandler {
  /** Synchronously from dispatch(): how to abort the exchange (it then ends with onError(error)). */
  onConnect(abort: (error?: Error) => void): void;
  /** The whole request was written to the process's connection: from now on it may have acted on it. */
  onRequestSent(): void;
  /** false: the handler refused the response (it aborted the exchange). */
  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string): boolean;
  /** false: pause until resume() is called. */
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(error: Error): void;
}

export interface ExchangeRequest {
  method: string;
  path: string;
  /** Flat [name, value, ...], already fit for the app (hop-by-hop headers removed). */
  headers: readonly string[];
  /** Sent with its Content-Length when the headers have one, chunked otherwise. */
  body: Buffer | Readable | null;
  /** Close the connection after this exchange. */
  reset: boolean;
}

/**
 * An upstream failure with a code, as Node's own socket errors have (forward.ts reads the codes). Not
 * HF_ codes: these never reach anyone on their own; the proxy wraps them in HF_UPSTREAM.
 */
export class UpstreamClientError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'UpstreamClientError';
    this.code = code;
  }
}

/** The app closed the connection before the response was over. */
export const UPSTREAM_CLOSED = 'UPSTREAM_CLOSED';
/** The app's address did not accept the connection within CONNECT_TIMEOUT_MS (a full accept queue). */
export const UPSTREAM_CONNECT_TIMEOUT = 'UPSTREAM_CONNECT_TIMEOUT';
const CONNECT_TIMEOUT_MS = 10_000;
/** The app's response is not valid HTTP/1.1 (llhttp's error in the message). */
export const UPSTREAM_INVALID = 'UPSTREAM_INVALID_RESPONSE';

/**
 * How long an app may send no byte of any answer, while requests wait on some of its connections and
 * others are idle here, before the idle ones are closed (see the policy above). Short: a server that
 * works answers within it, and a needless close costs only a later connect.
 */
export const SILENT_APP_MS = 5;

/**
 * How long a request that finds every connection to its process busy waits for one of them to be
 * free before it opens another (see the policy above): long enough for a single-threaded server to
 * work through the requests waiting for it, short for what a server that serves many at once pays
 * when it needs one more connection.
 */
export const WAIT_FOR_CONNECTION_MS = 20;

/** Subtracted from an announced Keep-Alive timeout, so that we close first (as undici does). */
const KEEP_ALIVE_THRESHOLD_MS = 1_000;
const KEEP_ALIVE_TIMEOUT = /timeout\s*=\s*(\d+)/i;

function headerBlock(request: ExchangeRequest): { head: string; chunked: boolean } {
  let head = `${request.method} ${request.path} HTTP/1.1\r\n`;
  const headers = request.headers;
  let length = false;
  let host = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') length = true;
    else if (name.length === 4 && name.toLowerCase() === 'host') host = true;
    head += `${name}: ${headers[i + 1]!}\r\n`;
  }
  // HTTP/1.1 requires a Host (an HTTP/1.0 visitor may have sent none).
  if (!host) head += 'host: localhost\r\n';
  const chunked = request.body !== null && !length && !Buffer.isBuffer(request.body);
  if (Buffer.isBuffer(request.body) && !length) head += `content-length: ${request.body.length}\r\n`;
  if (chunked) head += 'transfer-encoding: chunked\r\n';
  head += request.reset ? 'connection: close\r\n' : 'connection: keep-alive\r\n';
  return { head: `${head}\r\n`, chunked };
}

/** Methods a client may send again after a connection failure (RFC 9110 §9.2.2). */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const CRLF = '\r\n';
const CRLF_BUFFER = Buffer.from(CRLF, 'latin1');
const LAST_CHUNK = '0\r\n\r\n';

/** One request and its response on one connection (and, after a keep-alive race, on a second one). */
class Exchange {
  readonly request: ExchangeRequest;
  readonly handler: ExchangeHandler;
  readonly pool: TargetPool;
  connection: Connection | null = null;
  /** The request body is written whole (or there is none). */
  bodyDone = false;
  sent = false;
  responseStarted = false;
  /** A 1xx response was read: the real one follows on the same connection. */
  informational = false;
  /** HEAD: a response without a body whatever its headers say. */
  readonly headOnly: boolean;
  /** Sending it twice has the effect of sending it once (RFC 9110 §9.2.2). */
  readonly idempotent: boolean;
  paused = false;
  done = false;
  retriedStale = false;
  #body: Readable | null = null;
  #onBodyData: ((chunk: Buffer) => void) | null = null;
  #onBodyEnd: (() => void) | null = null;

  constructor(pool: TargetPool, request: ExchangeRequest, handler: ExchangeHandler) {
    this.pool = pool;
    this.request = request;
    this.handler = handler;
    this.headOnly = request.method === 'HEAD';
    this.idempotent = IDEMPOTENT_METHODS.has(request.method);
    const body = request.body;
    if (body !== null && !Buffer.isBuffer(body)) {
      // Listened to from now on, not only while it is sent: a body that fails while the request waits
      // for a connection (the visitor left mid-upload) ends the exchange then, and its 'error'
      // never goes unheard (that would throw).
      this.#body = body;
      body.once('error', this.#onBodyError);
    }
  }

  readonly abort = (error?: Error): void => {
    if (this.done) return;
    this.fail(error ?? new UpstreamClientError('UPSTREAM_ABORTED', 'the request to the app was aborted'));
  };

  readonly resume = (): void => {
    if (!this.paused || this.done) return;
    this.paused = false;
    this.connection?.wire.readStart();
  };

  /** Write the request on `connection`. */
  start(connection: Connection): void {
    const body = this.request.body;
    this.connection = connection;
    connection.exchange = this;
    const { head, chunked } = headerBlock(this.request);
    const wire = connection.wire;
    if (body === null) {
      this.bodyDone = true;
      wire.write(head, this.#headWritten);
      return;
    }
    if (Buffer.isBuffer(body)) {
      this.bodyDone = true;
      wire.write([Buffer.from(head, 'latin1'), body], this.#headWritten);
      return;
    }
    wire.write(head);
    this.#stream(body, wire, chunked);
  }

  readonly #headWritten = (): void => {
    if (this.done || this.connection === null) return;
    this.#markSent();
  };

  #markSent(): void {
    if (this.sent) return;
    this.sent = true;
    this.handler.onRequestSent();
  }

  /** A streamed body, with back-pressure from the app's connection. */
  #stream(body: Readable, wire: UpstreamWire, chunked: boolean): void {
    this.#onBodyData = (chunk: Buffer) => {
      if (chunk.length === 0) return;
      const ok = chunked ? wire.write([Buffer.from(`${chunk.length.toString(16)}${CRLF}`, 'latin1'), chunk, CRLF_BUFFER]) : wire.write(chunk);
      if (!ok) body.pause();
    };
    this.#onBodyEnd = () => {
      this.#detachBody();
      this.bodyDone = true;
      if (chunked) wire.write(LAST_CHUNK, this.#headWritten);
      else wire.flushed(this.#headWritten);
    };
    body.on('data', this.#onBodyData);
    body.once('end', this.#onBodyEnd);
  }

  readonly #onBodyError = (error: Error): void => {
    this.#detachBody();
    this.fail(error);
  };

  /** The app's connection took every queued write: the body may flow again. */
  drained(): void {
    this.#body?.resume();
  }

  #detachBody(): void {
    const body = this.#body;
    if (body === null) return;
    this.#body = null;
    if (this.#onBodyData !== null) body.off('data', this.#onBodyData);
    if (this.#onBodyEnd !== null) body.off('end', this.#onBodyEnd);
    body.off('error', this.#onBodyError);
  }

  /** The request body is not needed any more (the exchange is over): let go of it, sent or not. */
  #dropBody(): void {
    const body = this.#body;
    this.#detachBody();
    if (body !== null && !body.destroyed) body.destroy();
  }

  headers(statusCode: number, rawHeaders: string[], statusText: string, keepAlive: boolean): number {
    if (statusCode < 200) {
      if (statusCode === 101) {
        this.fail(new UpstreamClientError(UPSTREAM_INVALID, 'the app answered 101 Switching Protocols to a request that asked for no upgrade'));
        return 2;
      }
      this.informational = true;
      this.handler.onHeaders(statusCode, rawHeaders, this.resume, statusText);
      return 1;
    }
    this.responseStarted = true;
    const connection = this.connection!;
    connection.keepAlive = keepAlive;
    // It closes after each response when it closes a connection after its first one (gunicorn's sync
    // workers); puma closes one now and then after many (to be fair to its accept queue), which says
    // nothing of the next connection.
    if (keepAlive) this.pool.closesAfterEachResponse = false;
    else if (!this.request.reset && connection.served === 0) this.pool.closesAfterEachResponse = true;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!;
      if (name.length === 10 && name.toLowerCase() === 'keep-alive') {
        const match = KEEP_ALIVE_TIMEOUT.exec(rawHeaders[i + 1]!);
        if (match) connection.announcedIdleMs = Number(match[1]) * 1000 - KEEP_ALIVE_THRESHOLD_MS;
      }
    }
    if (!this.handler.onHeaders(statusCode, rawHeaders, this.resume, statusText)) return 2;
    // A body after HEAD's headers is not there, whatever Content-Length says.
    return this.headOnly ? 1 : 0;
  }

  data(chunk: Buffer): void {
    if (this.done) return;
    if (!this.handler.onData(chunk) && !this.done) {
      this.paused = true;
      this.connection?.wire.readStop();
    }
  }

  complete(): void {
    if (this.informational) {
      this.informational = false;
      return;
    }
    if (this.done) return;
    this.done = true;
    const connection = this.connection!;
    connection.exchange = null;
    connection.lastAnswered = this.request;
    if (this.paused) {
      this.paused = false;
      connection.wire.readStart();
    }
    this.#dropBody();
    if (!this.sent && this.bodyDone) this.#markSent();
    // The rest of this read is parsed before the connection goes back to the pool (settle).
    connection.settling = this;
  }

  /**
   * Once the read that completed the response is parsed whole: the connection back in the pool,
   * unless bytes followed the response in it (settle runs after the connection was destroyed for
   * them), then the handler. Never earlier: bytes after the end of a response (a body longer than
   * its Content-Length, a body after HEAD's or a 204's headers) would be read as the answer to the
   * next request on the connection, another visitor's.
   */
  settle(): void {
    const connection = this.connection!;
    // The app answered before the whole body was sent (a 413 to a big upload): that connection
    // is in the middle of a request and cannot carry another.
    const reusable = !connection.destroyed && connection.keepAlive && this.bodyDone && !this.request.reset;
    // Back in the pool before the handler runs: the request it lets in takes this very connection.
    if (reusable) this.pool.release(connection);
    else connection.destroy();
    this.handler.onComplete();
  }

  /** The connection failed under this exchange: maybe once more on a fresh one, else the end. */
  connectionFailed(connection: Connection, error: Error): void {
    if (this.done || connection !== this.connection) return;
    const replayable = this.request.body === null || Buffer.isBuffer(this.request.body);
    // A request that is not idempotent goes again only when it could not be written: once written,
    // the app may have read it and acted on it before it closed (a worker of its own that died).
    if (!this.responseStarted && !this.informational && connection.waitedIdle && !this.retriedStale && replayable && (this.idempotent || !this.sent)) {
      // The keep-alive race: the app closed a connection idle on its side as we wrote to it.
      this.retriedStale = true;
      connection.exchange = null;
      this.connection = null;
      this.pool.startOnFresh(this);
      return;
    }
    this.fail(error);
  }

  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.#dropBody();
    const connection = this.connection;
    if (connection !== null) {
      connection.exchange = null;
      connection.destroy();
    }
    this.handler.onError(error);
  }
}

/** One connection to one app process, with its response parser. */
class Connection implements WireEvents {
  readonly wire: UpstreamWire;
  readonly pool: TargetPool;
  readonly #parser: LlhttpParser;
  exchange: Exchange | null = null;
  /** The exchange whose response ended in the read being parsed: settled once the read is. */
  settling: Exchange | null = null;
  /** Exchanges completed on it. */
  served = 0;
  /** It waited in the pool before its exchange (kept alive, or opened ahead): the app may have closed it meanwhile. */
  waitedIdle = false;
  keepAlive = true;
  /** From the app's Keep-Alive: timeout=N, less a margin. */
  announcedIdleMs = Infinity;
  idleSinceMs = 0;
  destroyed = false;
  /** The request whose answer ended last on it: named when bytes follow that answer. */
  lastAnswered: ExchangeRequest | null = null;
  #partialHeaders: string[] = [];

  constructor(pool: TargetPool, target: UpstreamTarget) {
    this.pool = pool;
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
    parser[kOnMessageBegin] = () => {
      // A response to no request (bytes after the end of the last one): the app is confused and
      // this connection is done, before anyone's request goes on it.
      if (this.exchange === null) {
        this.destroy();
        this.#tellBytesAfterAnswer();
      }
    };
    parser[kOnHeaders] = (headers: string[]) => {
      for (const h of headers) this.#partialHeaders.push(h);
    };
    parser[kOnHeadersComplete] = (_vMajor: number, _vMinor: number, headers: string[] | undefined, _method: unknown, _url: unknown, statusCode: number, statusText: string, _upgrade: boolean, keepAlive: boolean): number => {
      this.pool.answerReads++;
      if (headers === undefined) {
        headers = this.#partialHeaders;
        this.#partialHeaders = [];
      }
      const exchange = this.exchange;
      if (exchange === null) {
        // A response to no request (bytes while idle): the app is confused; this connection is done.
        this.destroy();
        return 2;
      }
      return exchange.headers(statusCode, headers, statusText ?? '', keepAlive);
    };
    parser[kOnBody] = (chunk: Buffer) => {
      this.pool.answerReads++;
      this.exchange?.data(chunk);
    };
    parser[kOnMessageComplete] = () => {
      // Trailers arrive through kOnHeaders just before this: they end with their response (not
      // forwarded, as nginx does not), never at the head of the next response on the connection.
      if (this.#partialHeaders.length !== 0) this.#partialHeaders = [];
      const exchange = this.exchange;
      if (exchange === null) return;
      if (!exchange.informational) this.served++;
      exchange.complete();
    };
    parser[kOnExecute] = (result: number | Error) => {
      if (result instanceof Error) {
        // Bytes after an answer that closed the connection (HPE_CLOSED_CONNECTION): no new message
        // began for them, so kOnMessageBegin did not tell.
        if (this.exchange === null && !this.destroyed) this.#tellBytesAfterAnswer();
        this.#invalid(result);
      }
      this.#settle();
    };
    this.#parser = parser;
    this.wire = new UpstreamWire(target, this, CONNECT_TIMEOUT_MS);
    // The parser reads the connection in C++ (Node's http server does the same): no 'data' events.
    this.wire.handle._consumed = true;
    parser.consume(this.wire.handle);
  }

  /** The app sent bytes after the end of the last answer on this connection: the pool is told which. */
  #tellBytesAfterAnswer(): void {
    const last = this.lastAnswered;
    if (last !== null) this.pool.onBytesAfterAnswer?.(last.method, last.path);
  }

  #settle(): void {
    const settling = this.settling;
    if (settling === null) return;
    this.settling = null;
    settling.settle();
  }

  #invalid(error: Error): void {
    // Node's parser says what it found ('Duplicate Content-Length', HPE_HEADER_OVERFLOW) beside a bare 'Parse Error'.
    const { reason, code } = error as Error & { reason?: unknown; code?: unknown };
    const what = typeof reason === 'string' && reason !== '' ? reason : error.message;
    const detail = typeof code === 'string' && code !== '' ? `${what} (${code})` : what;
    this.#failWith(new UpstreamClientError(UPSTREAM_INVALID, `invalid response from the app: ${detail}`));
  }

  wireEnded(): void {
    if (this.destroyed) return;
    // EOF ends a response without a length (HTTP/1.0-style); otherwise it came too early.
    const exchange = this.exchange;
    if (exchange !== null && exchange.responseStarted) {
      const result = this.#parser.finish();
      // A response that ends at EOF completes here, not in a read.
      this.#settle();
      if (result instanceof Error) {
        this.#failWith(new UpstreamClientError(UPSTREAM_CLOSED, `the app closed the connection in the middle of the response (${result.message})`));
        return;
      }
    }
    if (this.exchange !== null) this.#failWith(new UpstreamClientError(UPSTREAM_CLOSED, 'the app closed the connection before answering'));
    else this.destroy();
  }

  wireFailed(error: Error): void {
    this.#failWith(error);
  }

  wireConnectTimedOut(): void {
    this.#failWith(new UpstreamClientError(UPSTREAM_CONNECT_TIMEOUT, `the app did not accept a connection within ${CONNECT_TIMEOUT_MS} ms`));
  }

  wireDrained(): void {
    this.exchange?.drained();
  }

  wireClosed(): void {
    // Only now: the close callback comes on a later tick, never from inside one of the parser's own callbacks.
    this.#parser.close();
  }

  #failWith(error: Error): void {
    const exchange = this.exchange;
    if (exchange !== null) exchange.connectionFailed(this, error);
    this.destroy();
  }

  /** Whether an idle connection may still be used at `nowMs`. */
  fresh(nowMs: number, idleTimeoutMs: number): boolean {
    const idleMs = nowMs - this.idleSinceMs;
    return !this.destroyed && idleMs < idleTimeoutMs && idleMs < this.announcedIdleMs;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.wire.close();
    this.pool.forget(this);
  }
}

/** Counts, as undici's pool.stats had them. */
export interface TargetPoolStats {
  /** Open connections, idle or busy. */
  connected: number;
  /** Exchanges under way. */
  running: number;
}

/** The connections to one app process. */
export class TargetPool {
  readonly target: UpstreamTarget;
  readonly #idleTimeoutMs: number;
  /** Last-in first-out: the connection answered last is on top. */
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();
  /** The app closed its last new connection after the first response (it does not keep connections). */
  closesAfterEachResponse = false;
  /** Counts reads of answers (heads and body pieces) on any connection: whether the app is at work. */
  answerReads = 0;
  /** Idle connections closed because the app went silent with requests waiting (SILENT_APP_MS). */
  closedForSilence = 0;
  /**
   * Bytes came after the end of an answer (a body longer than its Content-Length, a body after the
   * head of an answer to HEAD, or of a 204 or 304): told once the connection is closed for them.
   */
  onBytesAfterAnswer: ((method: string, path: string) => void) | null = null;
  /** The silence watch: armed while connections are idle here and others are busy. */
  #watch: NodeJS.Timeout | null = null;
  #watchedAnswerReads = 0;
  /** Requests that found every connection busy, oldest first (WAIT_FOR_CONNECTION_MS). */
  readonly #waiting: Array<{ exchange: Exchange; sinceMs: number }> = [];
  #waitTimer: NodeJS.Timeout | null = null;
  #closing = false;
  #closed: (() => void) | null = null;

  constructor(target: UpstreamTarget, idleTimeoutMs: number) {
    this.target = target;
    this.#idleTimeoutMs = idleTimeoutMs;
  }

  get stats(): TargetPoolStats {
    return { connected: this.#all.size, running: this.#all.size - this.#idle.length };
  }

  /** Send one request; everything that follows is reported to `handler`. */
  dispatch(request: ExchangeRequest, handler: ExchangeHandler): void {
    const exchange = new Exchange(this, request, handler);
    handler.onConnect(exchange.abort);
    if (exchange.done || this.#refusedWhileClosing(exchange)) return;
    const nowMs = Date.now();
    let connection: Connection | undefined;
    while ((connection = this.#idle.pop()) !== undefined) {
      if (connection.fresh(nowMs, this.#idleTimeoutMs)) break;
      connection.destroy();
    }
    if (connection !== undefined) {
      connection.waitedIdle = true;
      exchange.start(connection);
    } else if (!this.closesAfterEachResponse && !request.reset && this.#all.size > 0) this.#waitForConnection(exchange, nowMs);
    else exchange.start(this.#open());
    // An app that closes after each response (gunicorn sync): the next request's connection now.
    if (this.closesAfterEachResponse && this.#idle.length === 0 && !request.reset) this.release(this.#open());
  }

  /** After a keep-alive race: the same exchange on a new connection. */
  startOnFresh(exchange: Exchange): void {
    if (!this.#refusedWhileClosing(exchange)) exchange.start(this.#open());
  }

  /** No exchange starts once close() or destroy() began: true when this one was failed for it. */
  #refusedWhileClosing(exchange: Exchange): boolean {
    if (!this.#closing) return false;
    exchange.fail(new UpstreamClientError('UPSTREAM_POOL_CLOSED', 'the connections to this app process are being closed'));
    return true;
  }

  #open(): Connection {
    const connection = new Connection(this, this.target);
    this.#all.add(connection);
    return connection;
  }

  #waitForConnection(exchange: Exchange, nowMs: number): void {
    this.#waiting.push({ exchange, sinceMs: nowMs });
    if (this.#waitTimer === null) this.#waitTimer = setTimeout(this.#waitedLong, WAIT_FOR_CONNECTION_MS);
  }

  /** The longest waiting exchange that is still wanted (an aborted one is dropped here). */
  #nextWaiting(): Exchange | undefined {
    let waiting: { exchange: Exchange } | undefined;
    while ((waiting = this.#waiting.shift()) !== undefined) if (!waiting.exchange.done) return waiting.exchange;
    return undefined;
  }

  /** Those that waited WAIT_FOR_CONNECTION_MS go on new connections. */
  readonly #waitedLong = (): void => {
    this.#waitTimer = null;
    const nowMs = Date.now();
    // A timer may fire a little early: 1 ms of slack.
    while (this.#waiting.length > 0 && nowMs - this.#waiting[0]!.sinceMs >= WAIT_FOR_CONNECTION_MS - 1) {
      const exchange = this.#waiting.shift()!.exchange;
      if (!exchange.done) exchange.start(this.#open());
    }
    if (this.#waiting.length > 0) this.#waitTimer = setTimeout(this.#waitedLong, Math.max(1, WAIT_FOR_CONNECTION_MS - (nowMs - this.#waiting[0]!.sinceMs)));
  };

  /** Every waiting exchange on a new connection now (the pool is closing: none will be released). */
  #startWaitingOnFresh(): void {
    let exchange: Exchange | undefined;
    while ((exchange = this.#nextWaiting()) !== undefined) exchange.start(this.#open());
  }

  release(connection: Connection): void {
    if (this.#closing) {
      connection.destroy();
      return;
    }
    // A request waiting for a connection takes it: the app waits on the connection it just answered.
    const waiting = this.#nextWaiting();
    if (waiting !== undefined) {
      connection.waitedIdle = true;
      waiting.start(connection);
      return;
    }
    connection.idleSinceMs = Date.now();
    this.#idle.push(connection);
    if (this.#watch === null && this.#all.size > this.#idle.length) this.#armWatch();
  }

  #armWatch(): void {
    this.#watchedAnswerReads = this.answerReads;
    this.#watch = setTimeout(this.#watchFired, SILENT_APP_MS);
    this.#watch.unref();
  }

  // Decided after the loop's next poll for I/O: answers that came while holdfast was busy are read
  // first, so that a late timer is not mistaken for a silent app.
  readonly #watchFired = (): void => void setImmediate(this.#checkSilence);

  readonly #checkSilence = (): void => {
    this.#watch = null;
    if (this.#closing || this.#idle.length === 0) return;
    if (this.answerReads !== this.#watchedAnswerReads) {
      if (this.#all.size > this.#idle.length) this.#armWatch();
      return;
    }
    if (!this.#awaitingAnswer()) return;
    for (const connection of this.#idle.slice()) {
      connection.destroy();
      this.closedForSilence++;
    }
  };

  /** A request is out on some connection and no byte of its answer came yet. */
  #awaitingAnswer(): boolean {
    for (const connection of this.#all) {
      const exchange = connection.exchange;
      if (exchange !== null && !exchange.responseStarted) return true;
    }
    return false;
  }

  forget(connection: Connection): void {
    if (!this.#all.delete(connection)) return;
    const i = this.#idle.lastIndexOf(connection);
    if (i >= 0) this.#idle.splice(i, 1);
    // The last connection is gone (the app closed it, or it broke): none will be released.
    if (!this.#closing && this.#all.size === 0 && this.#waiting.length > 0) {
      const waiting = this.#nextWaiting();
      if (waiting !== undefined) waiting.start(this.#open());
    }
    if (this.#closing && this.#all.size === 0) this.#closed?.();
  }

  /** Close idle connections past their time. */
  sweep(nowMs: number): void {
    for (const connection of this.#idle.slice()) if (!connection.fresh(nowMs, this.#idleTimeoutMs)) connection.destroy();
  }

  /** No new exchanges; idle connections close now, busy ones after their exchange. */
  close(): Promise<void> {
    this.#closing = true;
    this.#stopTimers();
    for (const connection of this.#idle.slice()) connection.destroy();
    // Requests that waited for a connection were taken (their process has them): they are served.
    this.#startWaitingOnFresh();
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#closed = resolve;
    });
  }

  /** The silence watch and the wait for connections end with the pool. */
  #stopTimers(): void {
    if (this.#watch !== null) clearTimeout(this.#watch);
    this.#watch = null;
    if (this.#waitTimer !== null) clearTimeout(this.#waitTimer);
    this.#waitTimer = null;
  }

  /** Every connection now; exchanges under way fail. */
  destroy(): Promise<void> {
    this.#closing = true;
    this.#stopTimers();
    const destroyed = (): UpstreamClientError => new UpstreamClientError('UPSTREAM_DESTROYED', 'the proxy is closing');
    let waiting: Exchange | undefined;
    while ((waiting = this.#nextWaiting()) !== undefined) waiting.fail(destroyed());
    for (const connection of [...this.#all]) {
      const exchange = connection.exchange;
      if (exchange !== null) exchange.fail(destroyed());
      connection.destroy();
    }
    return Promise.resolve();
  }
}
