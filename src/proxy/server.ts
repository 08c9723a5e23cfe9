// The public HTTP server: takes a session from the pool for each request (or Upgrade), forwards
// the request to that process and its answer back, and translates failures into error pages.

import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Session, SessionSource } from '../core/session';
import type { UpstreamTarget } from '../core/spawner';
import { HoldfastError } from '../errors';
import type { Logger } from '../log/logger';
import { forwardOnce } from './forward';
import { hasRequestBody, requestIdFor, upstreamRequestHeaders, visitorResponseHeaders } from './headers';
import { writeRawResponse } from './raw-response';
import { failurePage, type ProxyRuntime } from './runtime';
import { forwardUpgrade } from './upgrade';
import { describeTarget, UpstreamPools } from './upstream-pools';

export interface ProxyOptions {
  sessions: SessionSource;
  /** 'production' hides internals on error pages; 'development' shows them. */
  environment: string;
  logger: Logger;
  /** Default 'x-request-id'; an incoming valid one is kept, else one is generated. */
  requestIdHeader?: string;
  /** Slow-loris protection on the visitor side. */
  headersTimeoutMs?: number;
  /** Whole request (headers + body) from the visitor. */
  requestTimeoutMs?: number;
  /** Idle visitor keep-alive. */
  keepAliveTimeoutMs?: number;
  /** Idle keep-alive sockets to app processes. */
  upstreamIdleTimeoutMs?: number;
  /**
   * For metrics; once per request, when its answer is over. statusCode 499: the visitor went away
   * before an answer was sent. An upgrade reports 101 when its upgraded connection ends.
   */
  onRequestDone?(info: { statusCode: number; durationMs: number; pid: number | null }): void;
  /** A path answered by holdfast itself: 200 while ready() and not stopping, else 503 (load balancers, Kubernetes). */
  readiness?: { path: string; ready(): boolean };
}

export interface Proxy {
  /** Rejects with HoldfastError('HF_LISTEN', one line naming address:port and the reason). */
  listen(port: number, address: string): Promise<{ address: string; port: number }>;
  /** Close idle keep-alive sockets to this target now, and do not keep any new ones to it (its process is draining/stopping). */
  forgetTarget(target: UpstreamTarget): void;
  /** Stop accepting; let in-flight requests finish for at most graceMs; then destroy everything. Idempotent. */
  close(graceMs: number): Promise<void>;
  inFlight(): number;
}

export const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
// Uploads are streamed to the app, so the whole request must arrive within this (Node's own default).
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
// Below the 5 s that Node apps keep idle sockets, so we close first and never reuse a dying one.
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS = 4_000;
/** Status reported to onRequestDone for a visitor that went away before it got an answer (as nginx does). */
export const VISITOR_GONE_STATUS = 499;

/** How long close() waits, after destroying what was left, for exchanges to let go of their sessions. */
const SETTLE_AFTER_DESTROY_MS = 1_000;

function listenError(error: NodeJS.ErrnoException, address: string, port: number): HoldfastError {
  const where = `${address.includes(':') ? `[${address}]` : address}:${port}`;
  const reason =
    error.code === 'EADDRINUSE'
      ? 'the address is already in use (is another server running on this port?)'
      : error.code === 'EACCES' || error.code === 'EPERM'
        ? 'permission denied (ports below 1024 need privileges)'
        : error.code === 'EADDRNOTAVAIL'
          ? 'the address is not available on this machine'
          : error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN'
            ? 'the address could not be resolved'
            : error.message;
  return new HoldfastError('HF_LISTEN', `cannot listen on ${where}: ${reason}`, { cause: error });
}

/** One visitor request from arrival to the last byte of its answer. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly startedMs: number;
  readonly requestId: string;
  gone: boolean;
  /** Aborts when the visitor's connection closes: a request still queued for a session leaves the queue. */
  readonly signal: AbortSignal;
  /** Set while an attempt is under way, to abort it when the visitor goes away. */
  onGone: (() => void) | null;
  pid: number | null;
  /** The exchange is over when both the serving logic and the visitor's response are. */
  holds: number;
}

/**
 * One visitor connection. Its requests come one after another (or pipelined), and all of them are
 * gone when it closes, so one AbortSignal serves them all: creating an AbortSignal costs Node 20
 * several microseconds, a noticeable share of a proxied request.
 */
interface Connection {
  readonly aborter: AbortController;
  readonly exchanges: Set<Exchange>;
  /** The response that owns the connection now, for clientError. */
  response: ServerResponse | null;
}

export function createProxy(options: ProxyOptions): Proxy {
  const logger = options.logger;
  const requestIdHeader = (options.requestIdHeader ?? 'x-request-id').toLowerCase();
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeoutMs = Math.min(options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS, requestTimeoutMs || Infinity);
  const pools = new UpstreamPools(options.upstreamIdleTimeoutMs ?? DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS);

  let closingStarted = false;
  let closePromise: Promise<void> | null = null;
  let inFlight = 0;
  let onIdle: (() => void) | null = null;
  const upgraded = new Set<Duplex>();
  const connections = new WeakMap<Socket, Connection>();

  const runtime: ProxyRuntime = {
    sessions: options.sessions,
    logger,
    environment: options.environment,
    requestIdHeader,
    pools,
    closing: () => closingStarted,
  };

  const begin = (): void => {
    inFlight++;
  };
  const end = (statusCode: number, startedMs: number, pid: number | null): void => {
    inFlight--;
    try {
      options.onRequestDone?.({ statusCode, durationMs: performance.now() - startedMs, pid });
    } catch (error) {
      logger.error({ err: error }, 'onRequestDone threw');
    }
    if (closingStarted) {
      server.closeIdleConnections();
      if (inFlight === 0) onIdle?.();
    }
  };

  const release = (ex: Exchange): void => {
    if (--ex.holds > 0) return;
    const statusCode = ex.gone && !ex.res.headersSent ? VISITOR_GONE_STATUS : ex.res.statusCode;
    end(statusCode, ex.startedMs, ex.pid);
  };

  const sendErrorPage = (ex: Exchange, error: unknown): void => {
    const { req, res } = ex;
    const page = failurePage(runtime, error, { method: req.method, url: req.url, requestId: ex.requestId, accept: req.headers.accept });
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const headers: Record<string, string | number> = { ...page.headers, [requestIdHeader]: ex.requestId, 'content-length': Buffer.byteLength(page.body) };
    // An unread request body would have to be read and thrown away before the next request.
    if (!req.complete || closingStarted) headers['connection'] = 'close';
    res.writeHead(page.status, headers);
    res.end(page.body);
  };

  const serve = async (ex: Exchange, expectContinue: boolean): Promise<void> => {
    const { req, res } = ex;
    const hasBody = hasRequestBody(req);
    const retryable = (req.method === 'GET' || req.method === 'HEAD') && !hasBody;
    const upstreamHeaders = upstreamRequestHeaders(req, { requestIdHeader, requestId: ex.requestId, upgrade: false });
    let avoidPid: number | undefined;
    for (let attempt = 0; ; attempt++) {
      let session: Session;
      try {
        const signal = ex.signal;
        session = await options.sessions.acquire(avoidPid === undefined ? { signal } : { signal, avoidPid });
      } catch (error) {
        if (!ex.gone) sendErrorPage(ex, error);
        return;
      }
      ex.pid = session.pid;
      if (ex.gone) {
        session.close();
        return;
      }
      // The visitor sends its body only once a process will take it.
      if (expectContinue && attempt === 0) res.writeContinue();
      const outcome = await forwardOnce(session, req, res, {
        pools,
        requestIdHeader,
        requestId: ex.requestId,
        upstreamHeaders,
        hasBody,
        closing: () => closingStarted,
        setOnGone: (onGone) => {
          ex.onGone = onGone;
        },
        gone: () => ex.gone,
        responseHeaders: (raw) => visitorResponseHeaders(raw, requestIdHeader, ex.requestId),
      });
      switch (outcome.kind) {
        case 'done':
          session.close();
          // The app answered before reading the whole body (a 413, say): read the rest and drop it,
          // as Node does, so that the visitor is not cut off before it can read the answer.
          if (!req.complete) req.resume();
          return;
        case 'visitor-gone':
          session.close();
          logger.debug({ pid: session.pid, requestId: ex.requestId }, 'visitor went away; request to the app aborted');
          return;
        case 'failed-during-response':
          session.close();
          logger.warn(
            { pid: session.pid, requestId: ex.requestId, err: outcome.error },
            'app process failed in the middle of a response; visitor connection closed',
          );
          return;
        case 'failed-before-response': {
          session.close({ unreachable: outcome.unreachable });
          if (ex.gone) return;
          if (outcome.unreachable && attempt === 0 && retryable) {
            logger.warn(
              { pid: session.pid, requestId: ex.requestId, err: outcome.error },
              'app process unreachable; retrying the request on another process',
            );
            avoidPid = session.pid;
            continue;
          }
          sendErrorPage(
            ex,
            new HoldfastError(
              'HF_UPSTREAM',
              `app process ${session.pid} at ${describeTarget(session.target)} failed before answering: ${outcome.error.message}`,
              { cause: outcome.error },
            ),
          );
          return;
        }
      }
    }
  };

  const markGone = (ex: Exchange): void => {
    if (ex.gone || ex.res.writableFinished) return;
    ex.gone = true;
    ex.onGone?.();
  };

  const connectionOf = (socket: Socket): Connection => {
    let connection = connections.get(socket);
    if (connection === undefined) {
      const created: Connection = { aborter: new AbortController(), exchanges: new Set(), response: null };
      connections.set(socket, created);
      const onClose = (): void => {
        created.aborter.abort();
        for (const ex of created.exchanges) markGone(ex);
      };
      if (socket.destroyed) process.nextTick(onClose);
      else socket.once('close', onClose);
      connection = created;
    }
    return connection;
  };

  const readiness = options.readiness;
  const answerReadiness = (req: IncomingMessage, res: ServerResponse): void => {
    const ready = !closingStarted && readiness!.ready();
    const body = ready ? 'ready\n' : 'not ready\n';
    res.writeHead(ready ? 200 : 503, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      ...(closingStarted ? { connection: 'close' } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void => {
    if (readiness && req.url === readiness.path && (req.method === 'GET' || req.method === 'HEAD')) {
      req.resume();
      answerReadiness(req, res);
      return;
    }
    begin();
    const connection = connectionOf(req.socket);
    const ex: Exchange = {
      req,
      res,
      startedMs: performance.now(),
      requestId: requestIdFor(req.headers[requestIdHeader]),
      gone: false,
      signal: connection.aborter.signal,
      onGone: null,
      pid: null,
      holds: 2,
    };
    connection.exchanges.add(ex);
    connection.response = res;
    req.on('error', (error) => logger.debug({ err: error, requestId: ex.requestId }, 'visitor request stream failed'));
    res.on('error', (error) => logger.debug({ err: error, requestId: ex.requestId }, 'visitor response stream failed'));
    res.once('close', () => {
      markGone(ex);
      connection.exchanges.delete(ex);
      if (connection.response === res) connection.response = null;
      release(ex);
    });
    if (req.socket.destroyed) markGone(ex);
    serve(ex, expectContinue)
      .catch((error: unknown) => {
        // A bug of ours: answer 500 rather than leave the visitor hanging.
        logger.error({ err: error, requestId: ex.requestId }, 'proxy failed to serve a request');
        if (!ex.gone) sendErrorPage(ex, error);
      })
      .finally(() => release(ex));
  };

  const server = http.createServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
    // Node looks for expired headers/request timers this often (30 s by default, too coarse).
    connectionsCheckingInterval: Math.max(25, Math.min(1_000, Math.floor(Math.min(headersTimeoutMs, requestTimeoutMs || Infinity) / 4))),
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, false));
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, true));

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    begin();
    const startedMs = performance.now();
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    if (closingStarted) {
      writeRawResponse(socket, 503, { 'content-type': 'text/plain; charset=utf-8' }, 'The server is stopping.\n');
      end(503, startedMs, null);
      return;
    }
    forwardUpgrade(runtime, req, socket, head, (statusCode, pid) => end(statusCode, startedMs, pid)).catch((error: unknown) => {
      logger.error({ err: error }, 'proxy failed to forward an upgrade');
      socket.destroy();
    });
  });

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const code = error.code;
    logger.debug({ err: error, code }, 'bad request from a visitor');
    const res = connections.get(socket as Socket)?.response ?? null;
    // Too late for an answer of our own once a response has begun on this connection.
    if (code === 'ECONNRESET' || !socket.writable || (res !== null && res.headersSent && !res.writableFinished)) {
      socket.destroy();
      return;
    }
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const text = status === 431 ? 'Request header fields too large.' : status === 408 ? 'Request timeout.' : 'Bad request.';
    writeRawResponse(socket, status, { 'content-type': 'text/plain; charset=utf-8' }, `${text}\n`);
  });

  server.on('error', (error) => logger.error({ err: error }, 'public server error'));

  const listen = (port: number, address: string): Promise<{ address: string; port: number }> =>
    new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        server.off('listening', onListening);
        reject(listenError(error, address, port));
      };
      const onListening = (): void => {
        server.off('error', onError);
        const bound = server.address();
        if (bound === null || typeof bound === 'string') resolve({ address, port });
        else resolve({ address: bound.address, port: bound.port });
      };
      server.once('error', onError);
      server.once('listening', onListening);
      try {
        server.listen(port, address);
      } catch (error) {
        server.off('error', onError);
        server.off('listening', onListening);
        reject(listenError(error as NodeJS.ErrnoException, address, port));
      }
    });

  const waitIdle = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (inFlight === 0) return resolve();
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        onIdle = null;
        resolve();
      }
      onIdle = done;
    });

  const close = (graceMs: number): Promise<void> => {
    closePromise ??= (async () => {
      closingStarted = true;
      const serverClosed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      server.closeIdleConnections();
      await waitIdle(graceMs);
      server.closeAllConnections();
      for (const socket of upgraded) socket.destroy();
      await pools.destroy();
      await waitIdle(SETTLE_AFTER_DESTROY_MS);
      if (inFlight > 0) logger.warn({ inFlight }, 'proxy closed with exchanges still settling');
      await serverClosed;
    })();
    return closePromise;
  };

  return {
    listen,
    forgetTarget: (target) => pools.forget(target),
    close,
    inFlight: () => inFlight,
  };
}
