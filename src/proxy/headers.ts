// What the proxy changes in the headers on the way to the app and back: hop-by-hop headers go
// (RFC 9110 §7.6.1), X-Forwarded-* and the request id come in.

import { randomUUID } from 'node:crypto';
import type { VisitorRequest } from './visitor';

/** Headers that describe one connection, never the message; removed in both directions. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // The proxy answers Expect itself (100 Continue once a process is found), so the app never sees it.
  'expect',
  // "Proxy" carries no meaning between us and the app and is the httpoxy vector (CGI-style apps
  // turn it into HTTP_PROXY); all Proxy-* belong to the hop they were sent on.
  'proxy',
]);

/**
 * End-to-end headers that a Connection header may name but never removes: a visitor (or an app)
 * listing them would strip what routes or frames the message (`Connection: keep-alive, Host`).
 */
const NEVER_HOP_BY_HOP = new Set([
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'content-range',
  'authorization',
  'cookie',
  'set-cookie',
  'location',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
]);

function isHopByHop(lowerName: string, listedInConnection: ReadonlySet<string> | null): boolean {
  if (HOP_BY_HOP.has(lowerName) || lowerName.startsWith('proxy-')) return true;
  return (listedInConnection?.has(lowerName) ?? false) && !NEVER_HOP_BY_HOP.has(lowerName);
}

/** The header names a Connection header lists (they are hop-by-hop too); null when there is none. */
function connectionTokens(values: readonly string[]): Set<string> | null {
  if (values.length === 0) return null;
  const tokens = new Set<string>();
  for (const value of values) {
    for (const token of value.split(',')) {
      const t = token.trim().toLowerCase();
      if (t) tokens.add(t);
    }
  }
  return tokens;
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** The visitor's request id when it is sane, else a new one. */
export function requestIdFor(incoming: string | string[] | undefined): string {
  const value = Array.isArray(incoming) ? incoming[0] : incoming;
  return value !== undefined && REQUEST_ID_PATTERN.test(value) ? value : randomUUID();
}

function clientAddress(req: VisitorRequest): string | undefined {
  const address = req.socket.remoteAddress;
  // An IPv4 visitor on a dual-stack socket shows up as ::ffff:1.2.3.4; apps expect 1.2.3.4.
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export interface UpstreamHeadersOptions {
  requestIdHeader: string; // lowercase
  requestId: string;
  /** Keep Connection: Upgrade and Upgrade (an upgrade request). */
  upgrade: boolean;
}

/**
 * The request headers for the app, as a flat [name, value, ...] list in the visitor's order and
 * case: hop-by-hop headers removed, X-Forwarded-For appended to, X-Forwarded-Proto and -Host set
 * unless a load balancer in front already set them (it knows the original scheme and host; the
 * app decides which proxies it trusts, as with the X-Forwarded-For chain), the request id set.
 */
export function upstreamRequestHeaders(req: VisitorRequest, options: UpstreamHeadersOptions): string[] {
  const raw = req.rawHeaders;
  const connection: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'connection') connection.push(raw[i + 1]!);
  const listed = connectionTokens(connection);

  const out: string[] = [];
  const forwardedFor: string[] = [];
  let sawHost = false;
  let sawProto = false;
  let sawForwardedHost = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === options.requestIdHeader) continue;
    if (lower === 'x-forwarded-for') {
      forwardedFor.push(value);
      continue;
    }
    if (options.upgrade && lower === 'upgrade') {
      out.push(name, value);
      continue;
    }
    if (isHopByHop(lower, listed)) continue;
    if (lower === 'host') {
      if (sawHost) continue; // the parser keeps the first Host; so does the app
      sawHost = true;
    } else if (lower === 'x-forwarded-proto') {
      if (sawProto) continue;
      sawProto = true;
    } else if (lower === 'x-forwarded-host') {
      if (sawForwardedHost) continue;
      sawForwardedHost = true;
    }
    out.push(name, value);
  }
  const address = clientAddress(req);
  if (address !== undefined) forwardedFor.push(address);
  if (forwardedFor.length > 0) out.push('X-Forwarded-For', forwardedFor.join(', '));
  if (!sawProto) out.push('X-Forwarded-Proto', 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http');
  const host = req.headers.host;
  if (!sawForwardedHost && typeof host === 'string') out.push('X-Forwarded-Host', host);
  out.push(options.requestIdHeader, options.requestId);
  if (options.upgrade) out.push('Connection', 'Upgrade');
  return out;
}

function latin1(value: Buffer | string): string {
  // latin1 keeps every byte the app sent; Node writes header strings back as latin1.
  return typeof value === 'string' ? value : value.toString('latin1');
}

/**
 * The response headers for the visitor from the app's raw [name, value, ...] list: hop-by-hop
 * headers removed (Node frames the body for the visitor's own connection), the request id set.
 */
export function visitorResponseHeaders(
  raw: readonly (Buffer | string)[],
  requestIdHeader: string,
  requestId: string,
  keepUpgrade = false,
): string[] {
  let listed: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && latin1(raw[i]!).toLowerCase() === 'connection') {
      listed = connectionTokens([...(listed ?? []), latin1(raw[i + 1]!)]);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]!);
    const lower = name.toLowerCase();
    if (lower === requestIdHeader) continue;
    if (keepUpgrade && (lower === 'upgrade' || lower === 'connection')) {
      out.push(name, latin1(raw[i + 1]!));
      continue;
    }
    if (isHopByHop(lower, listed)) continue;
    out.push(name, latin1(raw[i + 1]!));
  }
  out.push(requestIdHeader, requestId);
  return out;
}

/** Whether the request carries a body (RFC 9112 §6.3: Content-Length or Transfer-Encoding). */
export function hasRequestBody(req: VisitorRequest): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}
