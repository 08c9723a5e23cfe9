// The admin API: HTTP over the instance's Unix socket, serving Control (docs/admin-api.md).
// One of the three edges where errors become something else: here, a JSON envelope and a status.

import { createHash, timingSafeEqual } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Clock } from '../core/clock';
import { systemClock } from '../core/clock';
import type { Control, RestartProgress } from '../core/operations';
import { AdminError, HoldfastError, isHoldfastError, type ErrorCode } from '../errors';
import type { Logger } from '../log/logger';
import {
  NDJSON,
  type Access,
  type ErrorEnvelope,
  type RestartAccepted,
  type RestartRequest,
  type RestartStreamLine,
  type StatusDocument,
  type StopAccepted,
} from './api';
import type { Instance } from './instance';

export interface RouteContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly control: Control;
  readonly instance: Instance;
  readonly version: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The request body parsed as JSON; {} when empty. Throws AdminError 400 on bad JSON. */
  readJson(): Promise<unknown>;
  sendJson(status: number, body: unknown): void;
}

/** One endpoint. More (GET /metrics) are added by passing them to startAdminServer. */
export interface AdminRoute {
  method: 'GET' | 'POST';
  path: string;
  /** The least access the token must grant. */
  access: Access;
  handle(ctx: RouteContext): Promise<void> | void;
}

export interface AdminServerOptions {
  instance: Instance;
  control: Control;
  logger: Logger;
  version: string;
  /** Extra endpoints, e.g. GET /metrics. A route here replaces a built-in one with the same method and path. */
  routes?: readonly AdminRoute[];
  clock?: Clock;
  /** How long close() lets running requests (a waiting restart) finish before cutting them. Default 5 s. */
  closeGraceMs?: number;
}

export interface AdminServer {
  readonly socketPath: string;
  /** Stops listening, lets running requests finish (bounded), then cuts them. Idempotent. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const { instance, control, version } = opts;
  const logger = opts.logger.child({ component: 'admin' });
  const clock = opts.clock ?? systemClock;
  const closeGraceMs = opts.closeGraceMs ?? 5_000;
  const routes = new Map<string, AdminRoute>();
  for (const route of [...builtinRoutes(), ...(opts.routes ?? [])]) routes.set(`${route.method} ${route.path}`, route);
  const tokens = { read: digest(instance.readToken), admin: digest(instance.adminToken) };

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      logger.error({ err, event: 'admin_request_failed' }, 'admin request failed after its response started');
      res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000; // receiving the request; a waiting restart's response is not bounded by it
  server.keepAliveTimeout = 5_000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ctx = context(req, res);
    try {
      // Authenticate before routing: without a token nothing, not even which paths exist, is told.
      const granted = grant(req.headers.authorization, tokens);
      if (granted === null) {
        logger.warn({ method: req.method, url: req.url, code: 'HF_ADMIN_UNAUTHORIZED', event: 'admin_unauthorized' }, 'admin request without a valid token refused');
        throw new AdminError('HF_ADMIN_UNAUTHORIZED', 401, 'a valid token is required: Authorization: Bearer <token>');
      }
      const path = (req.url ?? '/').split('?')[0]!;
      const route = routes.get(`${req.method ?? ''} ${path}`);
      if (!route) {
        const allowed = [...routes.values()].filter((r) => r.path === path).map((r) => r.method);
        if (allowed.length > 0) {
          res.setHeader('allow', allowed.join(', '));
          throw new AdminError('HF_ADMIN_BAD_REQUEST', 405, `${req.method} is not allowed on ${path}; use ${allowed.join(' or ')}`);
        }
        throw new AdminError('HF_ADMIN_NOT_FOUND', 404, `no admin endpoint ${req.method} ${path}`);
      }
      if (route.access === 'admin' && granted !== 'admin') {
        logger.warn({ method: req.method, path, code: 'HF_ADMIN_FORBIDDEN', event: 'admin_forbidden' }, 'admin request with the read-only token refused');
        throw new AdminError('HF_ADMIN_FORBIDDEN', 403, `${req.method} ${path} needs the admin token; the read-only token may only read`);
      }
      await route.handle(ctx);
    } catch (err) {
      if (res.headersSent) throw err;
      sendError(res, err, logger);
    }
  }

  function context(req: IncomingMessage, res: ServerResponse): RouteContext {
    return {
      req,
      res,
      control,
      instance,
      version,
      clock,
      logger,
      readJson: () => readJson(req),
      sendJson: (status, body) => sendJson(res, status, body),
    };
  }

  await rm(instance.socketPath, { force: true }); // a socket file left by a crash would make listen fail
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(instance.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw new HoldfastError('HF_INTERNAL', `cannot listen on the admin socket ${instance.socketPath}: ${messageOf(err)}`, { cause: err });
  });
  await chmod(instance.socketPath, 0o600);
  server.on('error', (err) => logger.error({ err, event: 'admin_server_error' }, 'admin server error'));
  logger.debug({ socket: instance.socketPath, event: 'admin_listening' }, 'admin API listening');

  let closing: Promise<void> | null = null;
  return {
    socketPath: instance.socketPath,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const cut = setTimeout(() => server.closeAllConnections(), closeGraceMs);
        cut.unref();
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/** Built fresh for each server: routes may keep per-server state (a stop in progress). */
function builtinRoutes(): AdminRoute[] {
  return [
    { method: 'GET', path: '/status', access: 'read', handle: (ctx) => ctx.sendJson(200, statusDocument(ctx)) },
    { method: 'POST', path: '/restart', access: 'admin', handle: restart },
    {
      method: 'POST',
      path: '/resume',
      access: 'admin',
      handle: async (ctx) => {
        expectEmptyObject(await ctx.readJson(), '/resume');
        const result = ctx.control.resume();
        ctx.logger.info({ was_resisting: result.was_resisting, event: 'resume_requested' }, 'resume requested over the admin API');
        ctx.sendJson(200, { was_resisting: result.was_resisting });
      },
    },
    stopRoute(),
  ];
}

export function statusDocument(ctx: Pick<RouteContext, 'control' | 'instance' | 'version' | 'clock'>): StatusDocument {
  const snapshot = ctx.control.snapshot();
  const now = ctx.clock.now();
  const info = ctx.instance.info;
  const started = Date.parse(info.started_at);
  return {
    version: ctx.version,
    instance: {
      name: info.name,
      pid: info.pid,
      address: info.address,
      port: info.port,
      started_at: info.started_at,
      uptime_seconds: Number.isFinite(started) ? Math.max(0, Math.floor((now - started) / 1000)) : 0,
    },
    date: new Date(now).toISOString(),
    ...snapshot,
  };
}

async function restart(ctx: RouteContext): Promise<void> {
  const body = parseRestartRequest(await ctx.readJson());
  ctx.logger.info({ rolling: body.rolling ?? 'default', wait: body.wait ?? false, event: 'restart_requested' }, 'restart requested over the admin API');
  const ticket = ctx.control.restart(body.rolling === undefined ? {} : { rolling: body.rolling });

  if (!body.wait) {
    let last: RestartProgress | null = null;
    ticket.onProgress((p) => (last = p));
    ticket.done.then(
      (outcome) => ctx.logger.info({ outcome: outcome.outcome, generation: outcome.generation, event: 'admin_restart_finished' }, 'restart finished'),
      (err: unknown) => ctx.logger.error({ err, event: 'admin_restart_failed' }, 'restart failed'),
    );
    await nextTurn(); // the start event, if the ticket reports it asynchronously
    const started = last as RestartProgress | null;
    const group = ctx.control.snapshot().groups[0];
    const accepted: RestartAccepted = {
      accepted: true,
      kind: started?.kind ?? group?.restart?.kind ?? null,
      generation: started?.generation ?? group?.restart?.generation ?? group?.generation ?? null,
    };
    ctx.sendJson(202, accepted);
    return;
  }

  const { res } = ctx;
  res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-store' });
  res.flushHeaders();
  // The restart goes on when the client leaves: a deploy script's lost connection must not undo a deploy.
  const write = (line: RestartStreamLine) => {
    if (!res.destroyed && !res.writableEnded) res.write(JSON.stringify(line) + '\n');
  };
  ticket.onProgress((p) => write({ type: 'progress', ...p }));
  const gone = new Promise<'gone'>((resolve) => res.once('close', () => resolve('gone')));
  const settled = ticket.done.then(
    (outcome) => ({ outcome }),
    (err: unknown) => ({ err }),
  );
  const result = await Promise.race([settled, gone]);
  if (result === 'gone') {
    // Nobody listens any more; log the end for whoever looks later.
    void settled.then((r) => {
      if ('err' in r) ctx.logger.error({ err: r.err, event: 'admin_restart_failed' }, 'restart failed');
      else ctx.logger.info({ outcome: r.outcome.outcome, generation: r.outcome.generation, event: 'admin_restart_finished' }, 'restart finished');
    });
    return;
  }
  if ('err' in result) {
    ctx.logger.error({ err: result.err, event: 'admin_restart_failed' }, 'restart failed');
    write({ type: 'error', ...envelope(result.err) });
  } else {
    write({ type: 'outcome', ...result.outcome });
  }
  res.end();
}

function stopRoute(): AdminRoute {
  let stopping: Promise<void> | null = null;
  return {
    method: 'POST',
    path: '/stop',
    access: 'admin',
    handle: async (ctx) => {
      expectEmptyObject(await ctx.readJson(), '/stop');
      ctx.logger.info({ event: 'stop_requested' }, 'stop requested over the admin API');
      const accepted: StopAccepted = { stopping: true, pid: ctx.instance.info.pid };
      ctx.sendJson(202, accepted);
      // Stop once the answer is out, so the client hears it before the socket goes away.
      ctx.res.once('close', () => {
        stopping ??= ctx.control.stop().catch((err: unknown) => ctx.logger.error({ err, event: 'stop_failed' }, 'stop failed'));
      });
    },
  };
}

function parseRestartRequest(body: unknown): RestartRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AdminError('HF_ADMIN_BAD_REQUEST', 400, 'the body of POST /restart must be a JSON object');
  }
  const out: RestartRequest = {};
  for (const [key, value] of Object.entries(body)) {
    if (key !== 'rolling' && key !== 'wait') {
      throw new AdminError('HF_ADMIN_BAD_REQUEST', 400, `unknown key "${key}" in POST /restart; allowed: rolling, wait`);
    }
    if (value === undefined || value === null) continue;
    if (typeof value !== 'boolean') {
      throw new AdminError('HF_ADMIN_BAD_REQUEST', 400, `"${key}" in POST /restart must be true or false`);
    }
    out[key] = value;
  }
  return out;
}

function expectEmptyObject(body: unknown, path: string): void {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length > 0) {
    throw new AdminError('HF_ADMIN_BAD_REQUEST', 400, `POST ${path} takes no parameters`);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new AdminError('HF_ADMIN_BAD_REQUEST', 413, `the request body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AdminError('HF_ADMIN_BAD_REQUEST', 400, `the request body is not valid JSON: ${messageOf(err)}`);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown, logger: Logger): void {
  const status = statusOf(err);
  if (status >= 500) logger.error({ err, event: 'admin_request_failed' }, 'admin request failed');
  sendJson(res, status, envelope(err));
}

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  HF_ADMIN_UNAUTHORIZED: 401,
  HF_ADMIN_FORBIDDEN: 403,
  HF_ADMIN_NOT_FOUND: 404,
  HF_ADMIN_BAD_REQUEST: 400,
  HF_CONFIG_INVALID: 400,
  HF_SHUTTING_DOWN: 503,
};

function statusOf(err: unknown): number {
  if (err instanceof AdminError) return err.status;
  if (isHoldfastError(err)) return STATUS_BY_CODE[err.code] ?? 500;
  return 500;
}

function envelope(err: unknown): ErrorEnvelope {
  if (isHoldfastError(err)) return { error: { code: err.code, message: err.message } };
  return { error: { code: 'HF_INTERNAL', message: `internal error: ${messageOf(err)}` } };
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Compares in constant time (equal-length digests), and always against both tokens. */
function grant(header: string | undefined, tokens: { read: Buffer; admin: Buffer }): Access | null {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  const given = digest(match?.[1] ?? '');
  const isAdmin = timingSafeEqual(given, tokens.admin);
  const isRead = timingSafeEqual(given, tokens.read);
  if (!match) return null;
  return isAdmin ? 'admin' : isRead ? 'read' : null;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
