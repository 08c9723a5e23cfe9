// One attempt to get a request answered by one app process, over undici's dispatch API: the
// response is written to the visitor as it arrives, with back-pressure both ways.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Session } from '../core/session';
import type { UpstreamPools } from './upstream-pools';

export type AttemptOutcome =
  /** The app's whole response was handed to the visitor's connection. */
  | { kind: 'done' }
  /** Nothing was sent to the visitor: the caller may retry or answer with an error page. */
  | { kind: 'failed-before-response'; error: Error; unreachable: boolean }
  /** The response had begun; the visitor's connection was destroyed so it cannot mistake it for whole. */
  | { kind: 'failed-during-response'; error: Error }
  | { kind: 'visitor-gone' };

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
  'UND_ERR_SOCKET', // undici: "other side closed" before the response
  'UND_ERR_CONNECT_TIMEOUT',
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
 * The request body as a stream of its own. undici destroys the body stream when the app fails
 * mid-upload; destroying the visitor's request would destroy the visitor's connection too, and
 * with it the chance to answer 502.
 */
function detachableBody(req: IncomingMessage): Readable {
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

export interface AttemptContext {
  pools: UpstreamPools;
  requestIdHeader: string;
  requestId: string;
  upstreamHeaders: string[];
  hasBody: boolean;
  /** The proxy is closing: tell the visitor not to reuse the connection. */
  closing(): boolean;
  /** Lets the caller abort the attempt when the visitor goes away. */
  setOnGone(onGone: (() => void) | null): void;
  /** The visitor went away (checked when the connection to the app is made). */
  gone(): boolean;
  responseHeaders(raw: Buffer[], statusCode: number): string[];
}

class VisitorGoneError extends Error {
  constructor() {
    super('the visitor went away');
    this.name = 'VisitorGoneError';
  }
}

export function forwardOnce(session: Session, req: IncomingMessage, res: ServerResponse, ctx: AttemptContext): Promise<AttemptOutcome> {
  return new Promise((resolve) => {
    const upstream = ctx.pools.for(session);
    let abort: ((error?: Error) => void) | null = null;
    let resume: (() => void) | null = null;
    let responseStarted = false;
    let settled = false;
    let invalidResponse: Error | null = null;

    const onDrain = (): void => resume?.();
    const settle = (outcome: AttemptOutcome): void => {
      if (settled) return;
      settled = true;
      res.off('drain', onDrain);
      ctx.setOnGone(null);
      resolve(outcome);
    };
    res.on('drain', onDrain);
    ctx.setOnGone(() => abort?.(new VisitorGoneError()));

    const handler: Dispatcher.DispatchHandler = {
      onConnect(abortRequest) {
        abort = abortRequest;
        if (ctx.gone()) abortRequest(new VisitorGoneError());
      },
      onHeaders(statusCode, rawHeaders, resumeResponse, statusText) {
        if (statusCode < 200) {
          // 103 Early Hints may go on to the visitor; other 1xx are between us and the app.
          if (statusCode === 103 && !res.headersSent) {
            const links: string[] = [];
            for (let i = 0; i < rawHeaders.length; i += 2) {
              if (rawHeaders[i]!.toString('latin1').toLowerCase() === 'link') links.push(rawHeaders[i + 1]!.toString('latin1'));
            }
            if (links.length > 0) res.writeEarlyHints({ link: links });
          }
          return true;
        }
        resume = resumeResponse;
        try {
          const headers = ctx.responseHeaders(rawHeaders, statusCode);
          if (ctx.closing()) headers.push('Connection', 'close');
          if (statusText) res.writeHead(statusCode, statusText, headers);
          else res.writeHead(statusCode, headers);
          responseStarted = true;
        } catch (error) {
          // A header Node refuses to write (invalid characters): the app answered badly.
          invalidResponse = error instanceof Error ? error : new Error(String(error));
          abort?.(invalidResponse);
          return false;
        }
        return true;
      },
      onData(chunk) {
        return res.write(chunk);
      },
      onComplete() {
        res.end();
        settle({ kind: 'done' });
      },
      onError(error) {
        if (error instanceof VisitorGoneError || ctx.gone()) {
          if (!res.destroyed) res.destroy();
          settle({ kind: 'visitor-gone' });
        } else if (responseStarted) {
          res.destroy();
          settle({ kind: 'failed-during-response', error });
        } else {
          const cause = invalidResponse ?? error;
          settle({ kind: 'failed-before-response', error: cause, unreachable: invalidResponse === null && isUnreachable(error) });
        }
      },
    };

    try {
      upstream.pool.dispatch(
        {
          method: req.method as Dispatcher.HttpMethod,
          path: req.url ?? '/',
          headers: ctx.upstreamHeaders,
          body: ctx.hasBody ? detachableBody(req) : null,
          reset: upstream.reset,
        },
        handler,
      );
    } catch (error) {
      settle({ kind: 'failed-before-response', error: error instanceof Error ? error : new Error(String(error)), unreachable: false });
    }
  });
}
