// WebSocket and other Upgrade requests: a session on one process, the upgrade request forwarded
// over a connection of its own, then the two sockets piped together until either side ends.

import { isRetryable, shouldRetry } from './retry-policy';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Session } from '../core/leases';
import { HoldfastError } from '../errors';
import { hasRequestBody, requestIdFor, upstreamRequestHeaders, visitorResponseHeaders } from './headers';
import { isUnreachable } from './forward';
import { writeRawResponse } from './raw-response';
import { failurePage, type ProxyRuntime } from './runtime';
import { describeTarget } from './upstream-pools';

type TunnelOutcome =
  | { kind: 'upgraded'; statusCode: number }
  | { kind: 'answered'; statusCode: number }
  | { kind: 'failed-before-response'; error: Error; unreachable: boolean; reached: boolean }
  | { kind: 'visitor-gone' };

function responseHead(statusCode: number, statusMessage: string | undefined, headers: readonly string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage ?? http.STATUS_CODES[statusCode] ?? ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}\r\n`;
}

function tunnelOnce(
  runtime: ProxyRuntime,
  session: Session,
  req: IncomingMessage,
  visitor: Duplex,
  head: Buffer,
  requestId: string,
): Promise<TunnelOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: TunnelOutcome): void => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const target = session.target;
    const upstream = http.request({
      ...(target.kind === 'unix' ? { socketPath: target.socketPath } : { host: target.host, port: target.port }),
      method: req.method,
      path: req.url,
      headers: upstreamRequestHeaders(req, { requestIdHeader: runtime.requestIdHeader, requestId, upgrade: true }),
      setHost: false,
      agent: false, // an upgraded connection is never returned to a pool
    });
    let responded = false;
    // 'finish': the whole upgrade request was handed to the process's connection.
    let reached = false;
    upstream.once('finish', () => (reached = true));
    const onVisitorGone = (): void => {
      upstream.destroy();
      settle({ kind: 'visitor-gone' });
    };
    visitor.once('close', onVisitorGone);

    upstream.on('error', (error) => {
      visitor.off('close', onVisitorGone);
      if (visitor.destroyed) settle({ kind: 'visitor-gone' });
      else if (!responded) settle({ kind: 'failed-before-response', error, unreachable: isUnreachable(error), reached });
    });

    upstream.on('upgrade', (response, socket, upstreamHead) => {
      responded = true;
      visitor.off('close', onVisitorGone);
      if (visitor.destroyed) {
        socket.destroy();
        settle({ kind: 'visitor-gone' });
        return;
      }
      const statusCode = response.statusCode ?? 101;
      const headers = visitorResponseHeaders(response.rawHeaders, runtime.requestIdHeader, requestId, true);
      visitor.write(responseHead(statusCode, response.statusMessage, headers));
      if (upstreamHead.length > 0) visitor.write(upstreamHead);
      if (head.length > 0) socket.write(head);
      socket.setNoDelay(true);
      socket.on('error', (error) => runtime.logger.debug({ err: error, app_pid: session.pid, event: 'upgrade_upstream_failed' }, 'upgraded connection to the app failed'));
      let over = false;
      const end = (): void => {
        if (over) return;
        over = true;
        socket.destroy();
        visitor.destroy();
        settle({ kind: 'upgraded', statusCode });
      };
      socket.once('close', end);
      visitor.once('close', end);
      socket.pipe(visitor);
      visitor.pipe(socket);
    });

    upstream.on('response', (response) => {
      // The app declined the upgrade: pass its answer on, then end the connection, which must
      // not turn into a tunnel that bypasses the proxy for the visitor's next requests.
      responded = true;
      visitor.off('close', onVisitorGone);
      const statusCode = response.statusCode ?? 502;
      const headers = visitorResponseHeaders(response.rawHeaders, runtime.requestIdHeader, requestId);
      headers.push('Connection', 'close');
      let over = false;
      const end = (): void => {
        if (over) return;
        over = true;
        response.destroy();
        upstream.destroy();
        settle({ kind: 'answered', statusCode });
      };
      visitor.once('close', end);
      response.once('error', () => visitor.destroy());
      response.once('aborted', () => visitor.destroy());
      if (!visitor.writable) {
        visitor.destroy();
        return;
      }
      visitor.write(responseHead(statusCode, response.statusMessage, headers));
      response.pipe(visitor);
      visitor.once('finish', () => visitor.destroy());
    });

    upstream.end();
  });
}

/**
 * Forwards one Upgrade request; settles when the upgraded connection (or the answer) is over.
 * `finished` is called exactly once, with the status sent to the visitor (499: it went away first).
 */
export async function forwardUpgrade(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  visitor: Duplex,
  head: Buffer,
  finished: (statusCode: number, pid: number | null) => void,
): Promise<void> {
  const requestId = requestIdFor(req.headers[runtime.requestIdHeader]);
  const aborter = new AbortController();
  visitor.on('error', (error) => runtime.logger.debug({ err: error, event: 'upgrade_visitor_failed' }, 'visitor connection failed during an upgrade'));
  visitor.once('close', () => aborter.abort());
  // An upgraded connection may rightly stay quiet for long; a keep-alive timeout of the
  // connection's earlier requests must not end it.
  if (visitor instanceof Socket) {
    visitor.setTimeout(0);
    visitor.setNoDelay(true);
  }
  const failed = { method: req.method, url: req.url, requestId, accept: req.headers.accept };
  const retryable = isRetryable(req.method, hasRequestBody(req));
  let statusCode = 499;
  let pid: number | null = null;
  let avoidPid: number | undefined;
  try {
    for (let attempt = 0; ; attempt++) {
      let session: Session;
      try {
        session = await runtime.sessions.acquire(avoidPid === undefined ? { signal: aborter.signal } : { signal: aborter.signal, avoidPid });
      } catch (error) {
        if (visitor.destroyed) return;
        const page = failurePage(runtime, error, failed);
        statusCode = page.status;
        writeRawResponse(visitor, page.status, { ...page.headers, [runtime.requestIdHeader]: requestId }, page.body);
        return;
      }
      pid = session.pid;
      if (visitor.destroyed) {
        session.close();
        return;
      }
      const outcome = await tunnelOnce(runtime, session, req, visitor, head, requestId);
      if (outcome.kind !== 'failed-before-response') {
        session.close();
        if (outcome.kind !== 'visitor-gone') statusCode = outcome.statusCode;
        return;
      }
      session.close({ unreachable: outcome.unreachable });
      if (visitor.destroyed) return;
      if (shouldRetry(retryable, attempt + 1, { ...outcome, suspect: true })) {
        runtime.logger.warn({ app_pid: session.pid, err: outcome.error, request_id: requestId, event: 'upgrade_retried' }, 'app process went away before the upgrade reached it; retrying the upgrade on another process');
        avoidPid = session.pid;
        continue;
      }
      const error = new HoldfastError(
        'HF_UPSTREAM',
        `app process ${session.pid} at ${describeTarget(session.target)} failed before answering: ${outcome.error.message}`,
        { cause: outcome.error },
      );
      const page = failurePage(runtime, error, failed);
      statusCode = page.status;
      writeRawResponse(visitor, page.status, { ...page.headers, [runtime.requestIdHeader]: requestId }, page.body);
      return;
    }
  } finally {
    finished(statusCode, pid);
  }
}
