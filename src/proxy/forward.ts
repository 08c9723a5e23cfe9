// One attempt to get a request answered by one app process, over holdfast's upstream client
// (upstream-client.ts): the response is written to the visitor as it arrives, with back-pressure
// both ways.

import { Readable } from 'node:stream';
import type { Session } from '../core/leases';
import type { BufferedBody } from './request-buffer';
import { visitorResponseHeaders } from './headers';
import type { UpstreamPools } from './upstream-pools';
import type { VisitorRequest, VisitorResponse } from './visitor';
import { UPSTREAM_CLOSED, UPSTREAM_CONNECT_TIMEOUT, type ExchangeHandler } from './upstream-client';

export type AttemptOutcome =
  /** The app's whole response was handed to the visitor's connection. */
  | { kind: 'done' }
  /** Nothing was sent to the visitor: the caller may retry or answer with an error page. */
  | { kind: 'failed-before-response'; error: Error; unreachable: boolean; reached: boolean }
  /** The response had begun; the visitor's connection was destroyed so it cannot mistake it for whole. */
  | { kind: 'failed-during-response'; error: Error }
  /** stalledMs: it was cut off for taking nothing of the answer that long (sendTimeoutMs). */
  | { kind: 'visitor-gone'; stalledMs?: number }
  /** max_request_time passed: the request to the app was aborted (the visitor's connection too, if the response had begun). */
  | { kind: 'timed-out'; responseStarted: boolean };

// The process refused or reset the connection, or its socket is gone: most likely it is dead.
// Two live cases look the same and are reported alike (the pool checks the process anyway): an
// idle keep-alive socket the app closed just as a request was written to it (rare: our idle
// timeout is below the app's, and Node apps announce theirs), and an app that answered early and
// closed while the request body was still being sent (a 413 to a big upload) without reading it.
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOENT',
  'ECONNABORTED',
  'EHOSTUNREACH',
  UPSTREAM_CLOSED, // the app closed the connection before answering
  UPSTREAM_CONNECT_TIMEOUT, // its accept queue is full (or it hangs before accept)
]);

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Whether an error means the process could not be reached (not that it answered badly). */
export function isUnreachable(error: unknown): boolean {
  const code = errorCode(error);
  if (code !== undefined && UNREACHABLE_CODES.has(code)) return true;
  const cause = (error as { cause?: unknown } | null)?.cause;
  const causeCode = errorCode(cause);
  return causeCode !== undefined && UNREACHABLE_CODES.has(causeCode);
}

/**
 * The request body as a stream of its own. The upstream client destroys the body stream when the app fails
 * mid-upload; destroying the visitor's request would destroy the visitor's connection too, and
 * with it the chance to answer 502.
 */
function detachableBody(req: VisitorRequest): Readable {
  const onData = (chunk: Buffer): void => {
    if (!body.push(chunk)) req.pause();
  };
  const onEnd = (): void => {
    body.push(null);
  };
  const onClose = (): void => {
    if (!req.complete) body.destroy(new Error('the visitor went away while sending the request body'));
  };
  const detach = (): void => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
  };
  const body = new Readable({
    read: () => {
      req.resume();
    },
    destroy: (error, callback) => {
      detach();
      callback(error);
    },
  });
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('close', onClose);
  return body;
}

/** What one proxy's attempts share. */
export interface AttemptContext {
  readonly pools: UpstreamPools;
  /** Lowercase. */
  readonly requestIdHeader: string;
  /** How long the visitor may take nothing of the answer before it is cut off (the app process freed). */
  readonly sendTimeoutMs: number;
  /** The proxy is closing: tell the visitor not to reuse the connection. */
  closing(): boolean;
  /** Called exactly once per attempt, synchronously from the upstream client's callback (or from start()). */
  settled(attempt: Attempt, outcome: AttemptOutcome): void;
  /** The whole request was written to the process (the client's onRequestSent). */
  sent(attempt: Attempt): void;
}

/** The visitor's side of an attempt: one per request, kept across a retry. */
export interface AttemptRequest {
  readonly req: VisitorRequest;
  readonly res: VisitorResponse;
  readonly requestId: string;
  readonly upstreamHeaders: string[];
  readonly hasBody: boolean;
  /** The visitor went away (checked when the connection to the app is made). */
  readonly gone: boolean;
  /** The body read whole beforehand (request buffering); otherwise the visitor's stream is forwarded. */
  readonly body?: BufferedBody | null;
}

class RequestTimeError extends Error {
  constructor() {
    super('max_request_time passed');
    this.name = 'RequestTimeError';
  }
}

class VisitorGoneError extends Error {
  constructor(message = 'the visitor went away') {
    super(message);
    this.name = 'VisitorGoneError';
  }
}

/** The visitor's connection stayed full for sendTimeoutMs: it is cut off as one that went away. */
class VisitorStalledError extends VisitorGoneError {
  readonly stalledMs: number;
  constructor(stalledMs: number) {
    super(`the visitor took nothing of the answer for ${stalledMs} ms`);
    this.name = 'VisitorStalledError';
    this.stalledMs = stalledMs;
  }
}

/**
 * One attempt to get a request answered by one app process, as the upstream client's handler: a
 * class rather than closures, because it is made for every request and its methods are shared.
 */
export class Attempt implements ExchangeHandler {
  readonly session: Session;
  readonly request: AttemptRequest;
  readonly #ctx: AttemptContext;
  #abort: ((error?: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #onDrain: (() => void) | null = null;
  /** Armed while the visitor's connection is full and the answer waits on it (sendTimeoutMs). */
  #stalled: NodeJS.Timeout | null = null;
  #responseStarted = false;
  /** The client wrote the whole request to the process's connection: from now on it may have acted on it. */
  #requestSent = false;
  #settled = false;
  #invalidResponse: Error | null = null;
  #timedOut = false;

  constructor(session: Session, request: AttemptRequest, ctx: AttemptContext) {
    this.session = session;
    this.request = request;
    this.#ctx = ctx;
  }

  start(): void {
    const { req, hasBody } = this.request;
    try {
      const upstream = this.#ctx.pools.for(this.session);
      upstream.pool.dispatch(
        {
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          headers: this.request.upstreamHeaders,
          body: hasBody ? (this.request.body?.open() ?? detachableBody(req)) : null,
          reset: upstream.reset,
        },
        this,
      );
    } catch (error) {
      this.#settle({ kind: 'failed-before-response', error: error instanceof Error ? error : new Error(String(error)), unreachable: false, reached: false });
    }
  }

  /** The visitor went away: abort the request to the app (once it has a connection). */
  visitorGone(): void {
    this.#abort?.(new VisitorGoneError());
  }

  /** max_request_time passed: abort the request to the app; it settles as 'timed-out'. */
  timeOut(): void {
    if (this.#settled) return;
    this.#timedOut = true;
    this.#abort?.(new RequestTimeError());
  }

  #settle(outcome: AttemptOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#onDrain) this.request.res.off('drain', this.#onDrain);
    if (this.#stalled !== null) clearTimeout(this.#stalled);
    this.#ctx.settled(this, outcome);
  }

  onConnect(abortRequest: (error?: Error) => void): void {
    this.#abort = abortRequest;
    if (this.#timedOut) abortRequest(new RequestTimeError());
    else if (this.request.gone) abortRequest(new VisitorGoneError());
  }

  onRequestSent(): void {
    this.#requestSent = true;
    this.#ctx.sent(this);
  }

  onHeaders(statusCode: number, rawHeaders: string[], resumeResponse: () => void, statusText: string): boolean {
    const { res, requestId } = this.request;
    if (statusCode < 200) {
      // 103 Early Hints may go on to the visitor; other 1xx are between us and the app.
      if (statusCode === 103 && !res.headersSent) {
        const links: string[] = [];
        for (let i = 0; i < rawHeaders.length; i += 2) {
          if (rawHeaders[i]!.toLowerCase() === 'link') links.push(rawHeaders[i + 1]!);
        }
        if (links.length > 0) res.writeEarlyHints({ link: links });
      }
      return true;
    }
    this.#resume = resumeResponse;
    try {
      const headers = visitorResponseHeaders(rawHeaders, this.#ctx.requestIdHeader, requestId);
      if (this.#ctx.closing()) headers.push('Connection', 'close');
      if (statusText) res.writeHead(statusCode, statusText, headers);
      else res.writeHead(statusCode, headers);
      this.#responseStarted = true;
    } catch (error) {
      // A header Node refuses to write (invalid characters): the app answered badly.
      this.#invalidResponse = error instanceof Error ? error : new Error(String(error));
      this.#abort?.(this.#invalidResponse);
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    const res = this.request.res;
    if (res.write(chunk)) return true;
    // Back-pressure: the client pauses until resume(); hooked on the first full buffer only.
    if (this.#onDrain === null) {
      this.#onDrain = () => {
        if (this.#stalled !== null) {
          clearTimeout(this.#stalled);
          this.#stalled = null;
        }
        this.#resume?.();
      };
      res.on('drain', this.#onDrain);
    }
    // A visitor that takes nothing more for sendTimeoutMs is cut off: a single-threaded process
    // would otherwise serve nobody else for as long as it likes (responses are not buffered).
    if (this.#stalled === null && this.#ctx.sendTimeoutMs > 0) this.#stalled = setTimeout(this.#stallTimedOut, this.#ctx.sendTimeoutMs);
    return false;
  }

  readonly #stallTimedOut = (): void => {
    this.#stalled = null;
    this.#abort?.(new VisitorStalledError(this.#ctx.sendTimeoutMs));
  };

  onComplete(): void {
    this.request.res.end();
    this.#settle({ kind: 'done' });
  }

  onError(error: Error): void {
    const res = this.request.res;
    if (this.#timedOut) {
      if (this.#responseStarted && !res.destroyed) res.destroy();
      this.#settle({ kind: 'timed-out', responseStarted: this.#responseStarted });
    } else if (error instanceof VisitorGoneError || this.request.gone) {
      if (!res.destroyed) res.destroy();
      this.#settle(error instanceof VisitorStalledError ? { kind: 'visitor-gone', stalledMs: error.stalledMs } : { kind: 'visitor-gone' });
    } else if (this.#responseStarted) {
      res.destroy();
      this.#settle({ kind: 'failed-during-response', error });
    } else {
      const cause = this.#invalidResponse ?? error;
      this.#settle({ kind: 'failed-before-response', error: cause, unreachable: this.#invalidResponse === null && isUnreachable(error), reached: this.#requestSent });
    }
  }
}
