// The admin side's TCP listeners, both off unless configured (docs/operations.md):
//
//   status_address   the live status page for a browser: GET / (HTML), GET /status.json, GET /metrics.
//                    Read-only token only (the admin token is refused: it never travels over TCP).
//                    A browser brings it once as ?token=, which becomes an HttpOnly SameSite=Strict
//                    cookie, and is redirected to drop it from the address bar and history.
//   metrics_address  GET /metrics only, without a token, for a Prometheus scraper on a private
//                    address: the read token changes at every start, which a scrape config cannot
//                    follow, and the metrics are numbers, app name, pids and generations — no
//                    error text, no output, nothing that changes state.
//
// The admin API itself stays on its Unix socket.

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostPort } from '../config/host-port';
import { formatHostPort } from '../config/host-port';
import type { Clock } from '../core/clock';
import { systemClock } from '../core/clock';
import type { Control } from '../core/operations';
import { HoldfastError } from '../errors';
import type { Logger } from '../log/logger';
import type { StatusDocument } from './api';
import type { Instance } from './instance';
import type { Metrics } from './metrics';
import { statusDocument } from './server';
import { STATUS_PAGE_HTML, STATUS_PAGE_CSP, unauthorizedPage } from './status-page';

export interface WebListenersOptions {
  statusAddress: HostPort | undefined;
  metricsAddress: HostPort | undefined;
  instance: Instance;
  control: Control;
  metrics: Metrics;
  logger: Logger;
  version: string;
  clock?: Clock;
}

export interface WebListeners {
  /** `http://127.0.0.1:9465/`, port resolved; null when status_address is not set. */
  readonly statusUrl: string | null;
  /** `http://127.0.0.1:9464/metrics`; null when metrics_address is not set. */
  readonly metricsUrl: string | null;
  /** Stops listening and cuts open connections (a status page keeps one alive). Idempotent. */
  close(): Promise<void>;
}

/** status.json: the status document of docs/status-json.md, plus the counter the chart needs. */
export interface StatusPageDocument extends StatusDocument {
  requests_total: number;
}

export async function startWebListeners(opts: WebListenersOptions): Promise<WebListeners> {
  const logger = opts.logger.child({ component: 'web' });
  const servers: Server[] = [];
  const close = () => Promise.all(servers.map(closeServer)).then(() => undefined);
  try {
    let statusUrl: string | null = null;
    let metricsUrl: string | null = null;
    if (opts.statusAddress) {
      const server = createServer((req, res) => void serveStatus(req, res, port).catch((err: unknown) => fail(res, err)));
      servers.push(server);
      const port = await listen(server, opts.statusAddress, 'status_address');
      statusUrl = `http://${formatHostPort({ host: opts.statusAddress.host, port })}/`;
      logger.info({ status_url: statusUrl, event: 'status_page_listening' }, `status page on ${statusUrl} (read-only token; \`holdfast status --page\` prints the address with it)`);
    }
    if (opts.metricsAddress) {
      const server = createServer((req, res) => void serveMetrics(req, res).catch((err: unknown) => fail(res, err)));
      servers.push(server);
      const port = await listen(server, opts.metricsAddress, 'metrics_address');
      metricsUrl = `http://${formatHostPort({ host: opts.metricsAddress.host, port })}/metrics`;
      logger.info({ metrics_url: metricsUrl, event: 'metrics_listening' }, `Prometheus metrics on ${metricsUrl} (no token: keep this address private)`);
    }
    return { statusUrl, metricsUrl, close };
  } catch (err) {
    await close();
    throw err;
  }

  function fail(res: ServerResponse, err: unknown): void {
    logger.error({ err, event: 'status_page_request_failed' }, 'status page request failed');
    if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
    else res.destroy();
  }

  async function serveMetrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req);
    if (path !== '/metrics') return send(res, 404, 'text/plain; charset=utf-8', 'only GET /metrics is served here\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(res);
    await sendMetrics(req, res);
  }

  async function sendMetrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    send(res, 200, opts.metrics.contentType, await opts.metrics.text(), req.method === 'HEAD');
  }

  async function serveStatus(req: IncomingMessage, res: ServerResponse, port: number): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://holdfast');
    const cookieName = `holdfast-${port}`;
    const wantsHtml = url.pathname === '/' || /\btext\/html\b/.test(req.headers.accept ?? '');
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(res);

    const fromQuery = url.searchParams.get('token');
    if (fromQuery !== null) {
      if (!isReadToken(fromQuery, opts.instance.readToken)) return unauthorized(res, wantsHtml);
      // Keep the token out of the address bar, the history and any Referer: a cookie from now on.
      url.searchParams.delete('token');
      res.setHeader('set-cookie', `${cookieName}=${fromQuery}; HttpOnly; SameSite=Strict; Path=/`);
      res.setHeader('location', url.pathname + url.search);
      return send(res, 303, 'text/plain; charset=utf-8', 'see the page without the token in its address\n');
    }
    const token = bearer(req.headers.authorization) ?? cookie(req.headers.cookie, cookieName);
    if (token === undefined || !isReadToken(token, opts.instance.readToken)) return unauthorized(res, wantsHtml);

    switch (url.pathname) {
      case '/':
        res.setHeader('content-security-policy', STATUS_PAGE_CSP);
        return send(res, 200, 'text/html; charset=utf-8', STATUS_PAGE_HTML, req.method === 'HEAD');
      case '/status.json': {
        void opts.metrics.requestsTotal().then((requestsTotal) => {
          const doc: StatusPageDocument = {
            ...statusDocument({ control: opts.control, instance: opts.instance, version: opts.version, clock: opts.clock ?? systemClock }),
            requests_total: requestsTotal,
          };
          send(res, 200, 'application/json; charset=utf-8', JSON.stringify(doc) + '\n', req.method === 'HEAD');
        });
        return;
      }
      case '/metrics':
        return sendMetrics(req, res);
      default:
        return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  }
}

function unauthorized(res: ServerResponse, html: boolean): void {
  if (html) send(res, 401, 'text/html; charset=utf-8', unauthorizedPage());
  else send(res, 401, 'application/json; charset=utf-8', JSON.stringify({ error: { code: 'HF_ADMIN_UNAUTHORIZED', message: 'the read-only token is required: Authorization: Bearer <token>' } }) + '\n');
}

function methodNotAllowed(res: ServerResponse): void {
  res.setHeader('allow', 'GET, HEAD');
  send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n');
}

function send(res: ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
  });
  res.end(headOnly ? undefined : body);
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0]!;
}

function bearer(header: string | undefined): string | undefined {
  return /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '')?.[1];
}

function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Constant time, on equal-length digests. */
function isReadToken(given: string, readToken: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(readToken));
}

async function listen(server: Server, at: HostPort, key: string): Promise<number> {
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    const why = err.code === 'EADDRINUSE' ? 'the address is already in use' : err.code === 'EADDRNOTAVAIL' ? 'the address is not available on this machine' : err.message;
    throw new HoldfastError('HF_LISTEN', `cannot listen on ${key} ${formatHostPort(at)}: ${why}`, { cause: err });
  });
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Nothing served here is worth waiting for: a page polls again, a scraper retries.
    server.closeAllConnections();
  });
}
