// The public HTTP server: takes a session from the pool for each request (or Upgrade), forwards
// the request to that process and its answer back, and translates failures into error pages.

import { UnansweredRequests } from './unanswered';
import { QueueAbort } from './queue-abort';
import type { RequestInfo } from '../core/app-process';
import { isRetryable, shouldRetry } from './retry-policy';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionSource, Session, SessionSource } from '../core/leases';
import type { UpstreamTarget } from '../core/process-handle';
import { CapacityError, HoldfastError } from '../errors';
import type { Logger } from '../log/logger';
import { Attempt, type AttemptContext, type AttemptOutcome, type AttemptRequest } from './forward';
import { hasRequestBody, requestIdFor, upstreamRequestHeaders } from './headers';
import { writeRawResponse } from './raw-response';
import { failurePage, pathOf as pathOnly, type ProxyRuntime } from './runtime';
import { installConnectionCap, type CapDecision, type ConnectionCap } from './connection-cap';
import { installHandoff, takeConnectionListener } from './handoff';
import { BurstLog } from './burst-log';
import { RequestBuffers, withContentLength, type BufferedBody, type RequestBufferingSettings } from './request-buffer';
import type { StaticFiles } from './static-files';
import { forwardUpgrade } from './upgrade';
import { describeTarget, UpstreamPools } from './upstream-pools';
import { FastLane, type FastRequest, type FastResponse } from './fast-lane';
import type { VisitorRequest, VisitorResponse } from './visitor';

export interface ProxyOptions {
  sessions: SessionSource;
  /** The hand-off path: whole connections go to processes that take them; the rest are proxied. */
  connections?: ConnectionSource;
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
  /** A visitor that takes nothing of its answer for this long is cut off and the app process freed. */
  sendTimeoutMs?: number;
  /** Idle keep-alive sockets to app processes. */
  upstreamIdleTimeoutMs?: number;
  /**
   * For metrics; once per request, when its answer is over. statusCode 499: the visitor went away
   * before an answer was sent. An upgrade reports 101 when its upgraded connection ends.
   */
  onRequestDone?(info: { statusCode: number; durationMs: number; pid: number | null }): void;
  /** A path answered by holdfast itself: 200 while ready() and not stopping, else 503 (load balancers, Kubernetes). */
  readiness?: { path: string; ready(): boolean };
  /** Files under the app's static_files_dir, answered here without a session. */
  staticFiles?: StaticFiles;
  /** Read each request body completely before a session is taken (request_buffering, concurrency > 0). */
  requestBuffering?: RequestBufferingSettings;
  /** max_request_queue_time: a request waiting longer gets 504 HF_QUEUE_TIMEOUT. 0 = off. */
  maxRequestQueueTimeMs?: number;
  /** max_request_time: a request served longer gets 504 and its process is stopped (Session close { stuck }). 0 = off. */
  maxRequestTimeMs?: number;
  /** The cap on visitor connections (connection-cap.ts: connectionCap()); none when absent. */
  connectionCap?: CapDecision;
  /** Plain requests without a body through the fast lane (fast-lane.ts); default true. false: Node's server reads every request (tests compare the two). */
  fastLane?: boolean;
}

export interface Proxy {
  /** Rejects with HoldfastError('HF_LISTEN', one line naming address:port and the reason). */
  listen(port: number, address: string): Promise<{ address: string; port: number }>;
  /** Close idle keep-alive sockets to this target now, and do not keep any new ones to it (its process is draining/stopping). */
  closeUpstream(target: UpstreamTarget): void;
  /** Stop accepting; let in-flight requests finish for at most graceMs; then destroy everything. Idempotent. */
  close(graceMs: number): Promise<void>;
  inFlight(): number;
}

export const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
// Uploads are streamed to the app, so the whole request must arrive within this (Node's own default).
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
// A visitor whose connection stays full this long (it reads nothing, or next to nothing: the answer
// waits on it) is cut off, so that it cannot hold a process that serves one request at a time as long
// as it likes. nginx's send_timeout and its default.
export const DEFAULT_SEND_TIMEOUT_MS = 60_000;
// Below the 5 s that Node apps keep idle sockets, so we close first and never reuse a dying one.
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS = 4_000;
/** The accept queue asked for; the kernel caps it at net.core.somaxconn. */
const LISTEN_BACKLOG = 4096;
/** How long a failed request waits to hear from its dead process whether it had started on it. */
const EXIT_REPORT_WAIT_MS = 1000;
/** Status reported to onRequestDone for a visitor that went away before it got an answer (as nginx does). */
export const VISITOR_GONE_STATUS = 499;

/** Queue timeouts closer together than this are one burst, logged once. */
const QUEUE_TIMEOUT_BURST_MS = 10_000;

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

/** `OPTIONS *` (RFC 9110 §9.3.7): what the server allows; any other method with "*" is malformed. */
function answerAsterisk(req: IncomingMessage, res: ServerResponse): void {
  const ok = req.method === 'OPTIONS';
  const body = ok ? '' : 'Bad request.\n';
  res.writeHead(ok ? 200 : 400, {
    ...(ok ? { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' } : { 'content-type': 'text/plain; charset=utf-8' }),
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * A request body in a transfer coding besides chunked: holdfast takes the chunked framing off and
 * would hand the app a body still gzipped (`gzip, chunked`), with nothing saying so. 501 for that, as
 * RFC 9112 §6.1 asks and nginx answers; 400 when chunked is not the last coding, as the body's length
 * is then unknown (§6.3). Null for a body in plain chunked framing, or none.
 */
function refusedTransferCoding(req: IncomingMessage): 400 | 501 | null {
  const codings = req.headers['transfer-encoding'];
  if (codings === undefined) return null;
  const list = codings.toLowerCase().split(',').map((c) => c.trim());
  if (list.length === 1 && list[0] === 'chunked') return null;
  return list[list.length - 1] === 'chunked' ? 501 : 400;
}

/** The answer to a refused transfer coding; the connection closes (the body is not read). */
function answerTransferCoding(res: ServerResponse, status: 400 | 501): void {
  const body = status === 501 ? 'Transfer-Encoding not implemented: only chunked is.\n' : 'Bad request.\n';
  res.shouldKeepAlive = false;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** One visitor request from arrival to the last byte of its answer; the pool knows it by its RequestInfo (a crash names it). */
interface Exchange extends AttemptRequest, RequestInfo {
  readonly startedMs: number;
  /** Cleared once holdfast sent 100 Continue itself (request buffering). */
  expectContinue: boolean;
  upstreamHeaders: string[];
  /** The whole body, read before a session was taken (request buffering); removed when the exchange is over. */
  body: BufferedBody | null;
  /** max_request_time of the attempt under way. */
  requestTimer: NodeJS.Timeout | null;
  readonly retryable: boolean;
  gone: boolean;
  /** Made only when the request has to wait in the queue: most requests never need one. */
  aborter: QueueAbort | null;
  /** The attempt under way, to abort it when the visitor goes away. */
  attempt: Attempt | null;
  attempts: number;
  pid: number | null;
  /** The exchange is over when both the serving logic and the visitor's response are. */
  holds: number;
}

// The exchange a request or response belongs to, for listeners shared by all requests.
const EXCHANGE = Symbol('holdfast.exchange');
type WithExchange = { [EXCHANGE]?: Exchange };

export function createProxy(options: ProxyOptions): Proxy {
  const logger = options.logger;
  const requestIdHeader = (options.requestIdHeader ?? 'x-request-id').toLowerCase();
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeoutMs = Math.min(options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS, requestTimeoutMs || Infinity);
  // As nginx's "upstream sent more data than specified": the visitor got the answer up to its end,
  // the connection is closed, and the operator learns which app and request (the app's bug).
  const pools = new UpstreamPools(options.upstreamIdleTimeoutMs ?? DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS, (pid, target, method, path) => {
    const shown = pathOnly(path);
    logger.warn(
      { event: 'upstream_bytes_after_answer', app_pid: pid, method, path: shown },
      `app process ${pid} at ${describeTarget(target)} sent bytes after the end of its answer to ${method} ${shown} (a body longer than its Content-Length, or a body after the head of an answer to HEAD or of a 204 or 304); the connection was closed, the bytes dropped`,
    );
  });

  let closingStarted = false;
  let closePromise: Promise<void> | null = null;
  let inFlight = 0;
  let onIdle: (() => void) | null = null;
  const upgraded = new Set<Duplex>();
  // The exchange whose response currently owns each visitor connection, for clientError.
  const responses = new WeakMap<Socket, VisitorResponse>();

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
      logger.error({ err: error, event: 'request_done_hook_failed' }, 'onRequestDone threw');
    }
    if (closingStarted) {
      server.closeIdleConnections();
      lane?.closeIdle();
      if (inFlight === 0) onIdle?.();
    }
  };

  const release = (ex: Exchange): void => {
    if (--ex.holds > 0) return;
    ex.body?.dispose();
    const statusCode = ex.gone && !ex.res.headersSent ? VISITOR_GONE_STATUS : ex.res.statusCode;
    end(statusCode, ex.startedMs, ex.pid);
  };

  const sendErrorPage = (ex: Exchange, error: unknown, how?: { quiet: boolean }): void => {
    const { req, res } = ex;
    const accept = req.headers.accept;
    const page = failurePage(runtime, error, { method: req.method, url: req.url, requestId: ex.requestId, accept: typeof accept === 'string' ? accept : undefined }, how);
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

  // The serving logic of an exchange, from taking a session to settling the last attempt. When a
  // process is free (the usual case) it runs synchronously: no promise, no AbortController.
  const serveFailed = (ex: Exchange, error: unknown): void => {
    // A bug of ours: answer 500 rather than leave the visitor hanging.
    logger.error({ err: error, request_id: ex.requestId, event: 'proxy_request_failed' }, 'proxy failed to serve a request');
    if (!ex.gone) sendErrorPage(ex, error);
    release(ex);
  };

  const unanswered = new UnansweredRequests();

  const attempt = (ex: Exchange, avoidPid: number | undefined): void => {
    try {
      const session = options.sessions.tryAcquire?.(avoidPid, ex);
      if (session !== undefined) {
        forward(ex, session);
        return;
      }
    } catch (error) {
      serveFailed(ex, error);
      return;
    }
    ex.aborter ??= new QueueAbort();
    if (ex.gone) ex.aborter.abort();
    const signal = ex.aborter;
    const queueTimer = queueTimeout(ex);
    options.sessions.acquire(avoidPid === undefined ? { signal, request: ex } : { signal, avoidPid, request: ex }).then(
      (session) => {
        queueTimer?.clear();
        try {
          forward(ex, session);
        } catch (error) {
          serveFailed(ex, error);
        }
      },
      (error: unknown) => {
        queueTimer?.clear();
        if (queueTimer?.expired && !ex.gone) {
          const waitedMs = Math.round(performance.now() - queueTimer.sinceMs);
          queueTimeouts.note({ method: ex.req.method, path: pathOnly(ex.req.url), requestId: ex.requestId, waited_ms: waitedMs }, `a request waited ${waitedMs} ms in the queue (max_request_queue_time): 504`);
          sendErrorPage(ex, new CapacityError('HF_QUEUE_TIMEOUT', `the request waited more than ${maxRequestQueueTimeMs} ms in the queue`), { quiet: true });
        } else if (!ex.gone) sendErrorPage(ex, error);
        release(ex);
      },
    );
  };

  const forward = (ex: Exchange, session: Session): void => {
    ex.pid = session.pid;
    if (ex.gone) {
      session.close();
      release(ex);
      return;
    }
    // The visitor sends its body only once a process will take it.
    if (ex.expectContinue && ex.attempts === 0) ex.res.writeContinue();
    ex.attempts++;
    const current = new Attempt(session, ex, attemptContext);
    ex.attempt = current;
    if (maxRequestTimeMs > 0) {
      ex.requestTimer = setTimeout(() => current.timeOut(), maxRequestTimeMs);
      ex.requestTimer.unref();
    }
    current.start();
  };

  const settled = (current: Attempt, outcome: AttemptOutcome): void => {
    const ex = current.request as Exchange;
    const session = current.session;
    const suspect = unanswered.settled(current, outcome.kind === 'failed-before-response' && outcome.unreachable);
    if (ex.attempt === current) ex.attempt = null;
    if (ex.requestTimer !== null) {
      clearTimeout(ex.requestTimer);
      ex.requestTimer = null;
    }
    switch (outcome.kind) {
      case 'timed-out': {
        // The process is stuck on this request: the pool stops it (StopReason max_request_time) and replaces it.
        session.close({ stuck: true });
        logger.warn(
          { event: 'max_request_time_exceeded', app_pid: session.pid, method: ex.req.method, path: pathOnly(ex.req.url), requestId: ex.requestId, max_request_time_ms: maxRequestTimeMs },
          `app process ${session.pid} spent more than ${maxRequestTimeMs} ms on ${ex.req.method} ${pathOnly(ex.req.url)} (request ${ex.requestId}): 504, the process is replaced`,
        );
        if (!ex.gone && !outcome.responseStarted) {
          sendErrorPage(ex, new HoldfastError('HF_REQUEST_TIMEOUT', `app process ${session.pid} did not answer within max_request_time (${maxRequestTimeMs} ms)`), { quiet: true });
        }
        break;
      }
      case 'done':
        session.close();
        // The app answered before reading the whole body (a 413, say): read the rest and drop it,
        // as Node does, so that the visitor is not cut off before it can read the answer.
        if (!ex.req.complete) ex.req.resume();
        break;
      case 'visitor-gone':
        session.close();
        if (outcome.stalledMs === undefined) logger.debug({ app_pid: session.pid, request_id: ex.requestId, event: 'visitor_gone' }, 'visitor went away; request to the app aborted');
        else {
          // Rate-limited as every warning: a flood of such visitors writes a bounded number of lines.
          logger.warn(
            { app_pid: session.pid, request_id: ex.requestId, method: ex.method, path: ex.path, stalled_ms: outcome.stalledMs, event: 'visitor_stalled' },
            `a visitor took nothing of the answer to ${ex.method} ${ex.path} for ${outcome.stalledMs} ms: its connection was closed and app process ${session.pid} freed`,
          );
        }
        break;
      case 'failed-during-response':
        session.close();
        logger.warn(
          { app_pid: session.pid, request_id: ex.requestId, err: outcome.error, event: 'response_cut' },
          'app process failed in the middle of a response; visitor connection closed',
        );
        break;
      case 'failed-before-response': {
        session.close({ unreachable: outcome.unreachable });
        if (ex.gone) break;
        const upstreamError = new HoldfastError(
          'HF_UPSTREAM',
          `app process ${session.pid} at ${describeTarget(session.target)} failed before answering: ${outcome.error.message}`,
          { cause: outcome.error },
        );
        // The request reached a process that went away: whether it had started on it is the
        // process's to say (the Node hook reports what was in progress at exit); the retry policy
        // guesses only when it cannot.
        if (outcome.reached && outcome.unreachable && shouldRetry(ex.retryable, ex.attempts, { ...outcome, suspect: false }) && session.startedBeforeExit) {
          void session.startedBeforeExit(ex.requestId, EXIT_REPORT_WAIT_MS).then((started) => {
            if (ex.gone) return release(ex);
            if (shouldRetry(ex.retryable, ex.attempts, { ...outcome, suspect: started ?? suspect })) return retry(ex, session.pid, outcome.error);
            sendErrorPage(ex, upstreamError);
            release(ex);
          });
          return;
        }
        if (shouldRetry(ex.retryable, ex.attempts, { ...outcome, suspect })) {
          retry(ex, session.pid, outcome.error);
          return;
        }
        sendErrorPage(ex, upstreamError);
        break;
      }
    }
    release(ex);
  };

  const retry = (ex: Exchange, pid: number, error: Error): void => {
    logger.warn(
      { event: 'request_retried', app_pid: pid, request_id: ex.requestId, err: error },
      'app process went away before it started on the request; retrying the request on another process',
    );
    // Out of the upstream client's callback: the retry starts from a clean stack.
    queueMicrotask(() => attempt(ex, pid));
  };

  const attemptContext: AttemptContext = {
    pools,
    requestIdHeader,
    sendTimeoutMs: options.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS,
    closing: () => closingStarted,
    settled,
    sent: (a) => unanswered.sent(a),
  };

  const markGone = (ex: Exchange): void => {
    if (ex.gone || ex.res.writableFinished) return;
    ex.gone = true;
    ex.aborter?.abort();
    ex.attempt?.visitorGone();
  };

  // The exchanges still open on each visitor connection (more than one only when pipelining).
  const openOnSocket = new WeakMap<Socket, Exchange[]>();
  const onSocketClose = function (this: Socket): void {
    const open = openOnSocket.get(this);
    if (open === undefined) return;
    for (const ex of open.slice()) markGone(ex);
  };
  const onRequestError = function (this: VisitorRequest & WithExchange, error: Error): void {
    logger.debug({ err: error, request_id: this[EXCHANGE]?.requestId, event: 'visitor_request_stream_failed' }, 'visitor request stream failed');
  };
  const onResponseError = function (this: VisitorResponse & WithExchange, error: Error): void {
    logger.debug({ err: error, request_id: this[EXCHANGE]?.requestId, event: 'visitor_response_stream_failed' }, 'visitor response stream failed');
  };
  const onResponseClose = function (this: VisitorResponse & WithExchange): void {
    const ex = this[EXCHANGE]!;
    markGone(ex);
    const socket = ex.req.socket;
    const open = openOnSocket.get(socket);
    if (open !== undefined) {
      const i = open.indexOf(ex);
      if (i >= 0) open.splice(i, 1);
    }
    if (responses.get(socket) === this) responses.delete(socket);
    release(ex);
  };

  const readiness = options.readiness;
  const buffers = options.requestBuffering ? new RequestBuffers(options.requestBuffering) : undefined;
  const maxRequestQueueTimeMs = options.maxRequestQueueTimeMs ?? 0;
  const maxRequestTimeMs = options.maxRequestTimeMs ?? 0;
  const queueTimeouts = new BurstLog(logger, 'request_queue_timeout', QUEUE_TIMEOUT_BURST_MS);
  /** max_request_queue_time of one wait in the queue: aborts it and says so. */
  const queueTimeout = (ex: Exchange): { expired: boolean; sinceMs: number; clear(): void } | undefined => {
    if (maxRequestQueueTimeMs <= 0) return undefined;
    const aborter = ex.aborter!;
    const state = {
      expired: false,
      sinceMs: performance.now(),
      clear: () => clearTimeout(timer),
    };
    const timer = setTimeout(() => {
      state.expired = true;
      aborter.abort();
    }, maxRequestQueueTimeMs);
    timer.unref();
    return state;
  };
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

  const isReadiness = (method: string | undefined, url: string | undefined): boolean =>
    readiness !== undefined && url === readiness.path && (method === 'GET' || method === 'HEAD');

  const onRequest = (req: IncomingMessage & WithExchange, res: ServerResponse & WithExchange, expectContinue: boolean): void => {
    const refused = refusedTransferCoding(req);
    if (refused !== null) {
      logger.debug({ event: 'bad_request', transfer_encoding: req.headers['transfer-encoding'], status: refused }, 'request body in a transfer coding other than chunked');
      responses.set(req.socket, res);
      answerTransferCoding(res, refused);
      return;
    }
    if (isReadiness(req.method, req.url)) {
      req.resume();
      answerReadiness(req, res);
      return;
    }
    // `OPTIONS *` asks about the server, not a resource: holdfast answers it (an app cannot route "*").
    if (req.url === '*') {
      req.resume();
      answerAsterisk(req, res);
      return;
    }
    if (options.staticFiles?.handle(req, res)) {
      begin();
      const startedMs = performance.now();
      res.once('close', () => end(res.writableFinished ? res.statusCode : VISITOR_GONE_STATUS, startedMs, null));
      return;
    }
    serve(req, res, expectContinue);
  };

  /** A request for an app process, from Node's server or the fast lane. */
  const serve = (req: VisitorRequest & WithExchange, res: VisitorResponse & WithExchange, expectContinue: boolean): void => {
    begin();
    // This connection came through the proxy while no process could take it (start, probation, a
    // queue); now one can: close it after this answer, and the visitor's next connection is handed off.
    if (options.connections?.takesConnectionsNow()) res.shouldKeepAlive = false;
    const hasBody = hasRequestBody(req);
    const requestId = requestIdFor(req.headers[requestIdHeader]);
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const ex: Exchange = {
      req,
      res,
      method: req.method ?? 'GET',
      // The query string may hold secrets: the log gets the path only.
      path: query >= 0 ? url.slice(0, query) : url,
      requestId,
      upstreamHeaders: upstreamRequestHeaders(req, { requestIdHeader, requestId, upgrade: false }),
      hasBody,
      startedMs: performance.now(),
      expectContinue,
      retryable: isRetryable(req.method, hasBody),
      gone: false,
      aborter: null,
      attempt: null,
      attempts: 0,
      pid: null,
      holds: 2,
      body: null,
      requestTimer: null,
    };
    req[EXCHANGE] = ex;
    res[EXCHANGE] = ex;
    const socket = req.socket;
    responses.set(socket, res);
    let open = openOnSocket.get(socket);
    if (open === undefined) {
      open = [];
      openOnSocket.set(socket, open);
      socket.once('close', onSocketClose);
    }
    open.push(ex);
    req.on('error', onRequestError);
    res.on('error', onResponseError);
    res.once('close', onResponseClose);
    if (socket.destroyed) markGone(ex);
    if (buffers !== undefined && hasBody) bufferThenAttempt(ex, buffers);
    else attempt(ex, undefined);
  };

  // Request buffering: the whole body first, then a session.
  const bufferThenAttempt = (ex: Exchange, from: RequestBuffers): void => {
    const res = ex.res;
    // Only Node's server reads requests with a body (the fast lane takes none).
    const req = ex.req as unknown as IncomingMessage;
    if (from.tooLarge(req)) {
      tooLarge(ex);
      release(ex);
      return;
    }
    if (ex.expectContinue) {
      res.writeContinue();
      ex.expectContinue = false;
    }
    from.read(req).then((outcome) => {
      switch (outcome.kind) {
        case 'buffered':
          ex.body = outcome.body;
          if (ex.gone) break;
          ex.upstreamHeaders = withContentLength(ex.upstreamHeaders, outcome.body.bytes);
          attempt(ex, undefined);
          return;
        case 'too-large':
          if (!ex.gone) tooLarge(ex);
          break;
        case 'gone':
          logger.debug({ requestId: ex.requestId }, 'visitor went away while sending the request body');
          break;
        case 'failed':
          if (!ex.gone) sendErrorPage(ex, new HoldfastError('HF_INTERNAL', `could not buffer the request body: ${outcome.error.message}`, { cause: outcome.error }));
          break;
      }
      release(ex);
    }, (error: unknown) => serveFailed(ex, error));
  };

  const tooLarge = (ex: Exchange): void => {
    const body = 'Request body too large.\n';
    logger.info({ event: 'request_body_too_large', requestId: ex.requestId, max_request_body_bytes: options.requestBuffering?.maxBodyBytes }, 'request body over max_request_body_size: 413');
    ex.res.writeHead(413, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close', [requestIdHeader]: ex.requestId });
    ex.res.end(body);
  };

  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  const server = http.createServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
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
      logger.error({ err: error, event: 'upgrade_failed' }, 'proxy failed to forward an upgrade');
      socket.destroy();
    });
  });

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const code = error.code;
    if (code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a request that closes its connection (Connection: close, or HTTP/1.0 without
      // keep-alive): the requests up to it are answered, in order, and the connection closes after
      // the last one; the rest is not read (RFC 9112 §9.6), as nginx does. Node's own answer, a 400
      // written at once, would cut the answers to the requests pipelined before it.
      (socket as Socket).pause();
      return;
    }
    logger.debug({ err: error, event: 'bad_request' }, 'bad request from a visitor');
    const res = responses.get(socket as Socket);
    // Answered in full, and closing after that answer (a 501, a 413): nothing more to say on it.
    if (res !== undefined && res.writableFinished && !res.shouldKeepAlive) return;
    // Too late for an answer of our own once a response has begun on this connection.
    if (code === 'ECONNRESET' || !socket.writable || (res !== undefined && res.headersSent && !res.writableFinished)) {
      socket.destroy();
      return;
    }
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const text = status === 431 ? 'Request header fields too large.' : status === 408 ? 'Request timeout.' : 'Bad request.';
    writeRawResponse(socket, status, { 'content-type': 'text/plain; charset=utf-8' }, `${text}\n`);
  });

  // Before it listens, an error is listen()'s to report (HF_LISTEN, one line); after, it is news.
  server.on('error', (error) => {
    if (server.listening) logger.error({ err: error, event: 'server_error' }, 'public server error');
  });
  let cap: ConnectionCap | undefined;
  // Connections come to the fast lane first; it gives Node's server those it does not serve.
  let lane: FastLane | undefined;
  if (options.fastLane !== false) {
    const staticFiles = options.staticFiles;
    const fast = new FastLane({
      toNode: takeConnectionListener(server, 'the fast lane'),
      onRequest: (req: FastRequest, res: FastResponse) => {
        cap?.requestBegan(req.socket, res);
        serve(req, res, false);
      },
      answeredHere: (method, url) =>
        isReadiness(method, url) || staticFiles?.claim(method, url) !== undefined,
      requestIdHeader,
      keepAliveTimeoutMs,
      closing: () => closingStarted,
      onBug: (error) => logger.error({ err: error, event: 'fast_lane_failed' }, 'the fast lane failed on a request; its connection was closed'),
    });
    lane = fast;
    server.on('connection', (socket: Socket) => fast.accept(socket));
  }
  if (options.connections) {
    installHandoff(server, options.connections, {
      closing: () => closingStarted,
      logger,
      mayHand: () => cap?.crowded() !== true,
      handed: (socket, away) => (away ? cap?.handedOff(socket) : cap?.takenBack(socket)),
    });
  }
  if (options.connectionCap) cap = installConnectionCap(server, options.connectionCap, logger, headersTimeoutMs);

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
        // A flood of connections waits in the kernel's queue (up to net.core.somaxconn) rather than
        // having its SYNs dropped, which would cost every visitor behind it a 1 s retransmit.
        server.listen({ port, host: address, backlog: LISTEN_BACKLOG });
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
      cap?.close();
      const serverClosed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      server.closeIdleConnections();
      lane?.closeIdle();
      await waitIdle(graceMs);
      server.closeAllConnections();
      lane?.destroyAll();
      for (const socket of upgraded) socket.destroy();
      await pools.destroy();
      await waitIdle(SETTLE_AFTER_DESTROY_MS);
      await buffers?.close();
      queueTimeouts.flush();
      if (inFlight > 0) logger.warn({ in_flight: inFlight, event: 'proxy_closed_unsettled' }, 'proxy closed with exchanges still settling');
      await serverClosed;
    })();
    return closePromise;
  };

  return {
    listen,
    closeUpstream: (target) => pools.closeTarget(target),
    close,
    inFlight: () => inFlight,
  };
}
