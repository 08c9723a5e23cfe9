// The pages a visitor sees when holdfast cannot get an answer from the app. In production they say
// what happened in plain words and give an error id to quote; the details (command, exit code,
// output, messages that may hold paths) go to the log only. In development the page shows them.

import { CapacityError, HoldfastError, SpawnError, newErrorId, type ErrorCode } from '../errors';

export interface ErrorPage {
  status: number;
  code: ErrorCode;
  errorId: string;
  headers: Record<string, string>;
  body: string;
}

export interface ErrorPageOptions {
  /** 'development' shows the cause; anything else is treated as production. */
  environment: string;
  /** The request's Accept header: JSON when it prefers application/json, else HTML. */
  accept: string | undefined;
  requestId?: string;
}

/** Seconds a visitor is told to wait when the request queue is full. */
export const QUEUE_FULL_RETRY_AFTER_SECONDS = 5;

interface Kind {
  status: number;
  title: string;
  /** Safe for any visitor: no detail of the machine or the app. */
  publicMessage: string;
}

const STATUS_TEXT: Record<number, string> = {
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

function kindOf(code: ErrorCode): Kind {
  switch (code) {
    case 'HF_QUEUE_FULL':
      return { status: 503, title: 'The server is too busy', publicMessage: 'The server is too busy right now. Please try again in a moment.' };
    case 'HF_SHUTTING_DOWN':
      return { status: 503, title: 'The server is restarting', publicMessage: 'The server is restarting or stopping. Please try again in a moment.' };
    case 'HF_QUEUE_TIMEOUT':
      return { status: 504, title: 'The server took too long', publicMessage: 'The server took too long to take this request. Please try again later.' };
    case 'HF_REQUEST_TIMEOUT':
      return { status: 504, title: 'The web application took too long', publicMessage: 'The web application took too long to answer this request. Please try again later.' };
    case 'HF_SPAWN_OS':
    case 'HF_SPAWN_EXITED':
    case 'HF_SPAWN_TIMEOUT':
    case 'HF_SPAWN_PROBATION':
      return { status: 503, title: 'The web application could not be started', publicMessage: 'The web application could not be started. Please try again later.' };
    case 'HF_UPSTREAM':
      return { status: 502, title: 'The web application did not answer', publicMessage: 'The web application failed to answer this request. Please try again later.' };
    default:
      return { status: 500, title: 'Something went wrong', publicMessage: 'Something went wrong on the server. Please try again later.' };
  }
}

/** The HoldfastError code the proxy reports for any error. */
export function codeOf(error: unknown): ErrorCode {
  if (error instanceof HoldfastError) return error.code;
  return 'HF_INTERNAL';
}

/** The error id for this failure: a spawn error's own (it is in the spawn's log line), else a new one. */
export function errorIdOf(error: unknown): string {
  return error instanceof SpawnError ? error.details.errorId : newErrorId();
}

/** The messages of an error and its causes, for developers. */
function causeChain(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code;
      parts.push(typeof code === 'string' && !current.message.includes(code) ? `${current.message} (${code})` : current.message);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(': ');
}

interface DevDetails {
  cause: string;
  category?: string;
  exit_code?: number | null;
  signal?: string | null;
  command?: string;
  output?: readonly string[];
  generation?: number;
  release?: string;
}

function devDetails(error: unknown): DevDetails {
  const details: DevDetails = { cause: causeChain(error) };
  if (error instanceof SpawnError) {
    const d = error.details;
    details.category = d.category;
    details.exit_code = d.exitCode;
    details.signal = d.signal;
    details.command = d.command;
    details.output = d.outputTail;
    details.generation = d.generation;
    details.release = d.release;
  }
  return details;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
}

function parseAccept(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const part of accept.split(',')) {
    const [mediaType, ...params] = part.split(';');
    const [type, subtype] = (mediaType ?? '').trim().toLowerCase().split('/');
    if (!type || !subtype) continue;
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=');
      if (key?.trim().toLowerCase() === 'q') {
        const parsed = Number(value?.trim());
        q = Number.isFinite(parsed) ? Math.min(1, Math.max(0, parsed)) : 0;
      }
    }
    ranges.push({ type, subtype, q });
  }
  return ranges;
}

// q and specificity (3 exact, 2 type/*, 1 */*, 0 none) of the most specific range matching.
function match(ranges: readonly MediaRange[], type: string, subtype: string): { q: number; specificity: number } {
  let best = { q: 0, specificity: 0 };
  for (const r of ranges) {
    const specificity =
      r.type === type && r.subtype === subtype ? 3 : r.type === type && r.subtype === '*' ? 2 : r.type === '*' && r.subtype === '*' ? 1 : 0;
    if (specificity > best.specificity) best = { q: r.q, specificity };
  }
  return best;
}

// Whether the visitor prefers JSON over HTML: a higher q, or the same q named more precisely
// ("application/json, */*" is an API client; a browser's "text/html, ..., */*;q=0.8" is not).
export function prefersJson(accept: string | undefined): boolean {
  if (!accept) return false;
  const ranges = parseAccept(accept);
  const json = match(ranges, 'application', 'json');
  const html = match(ranges, 'text', 'html');
  if (json.q === 0) return false;
  if (json.q !== html.q) return json.q > html.q;
  return json.specificity > html.specificity;
}

function htmlPage(kind: Kind, code: ErrorCode, errorId: string, dev: DevDetails | null): string {
  const rows: string[] = [];
  if (dev) {
    const row = (label: string, value: string): void => {
      rows.push(`<tr><th>${escapeHtml(label)}</th><td><code>${escapeHtml(value)}</code></td></tr>`);
    };
    row('Cause', dev.cause);
    row('Code', code);
    if (dev.category !== undefined) row('Category', dev.category);
    if (dev.exit_code !== undefined && dev.exit_code !== null) row('Exit code', String(dev.exit_code));
    if (dev.signal !== undefined && dev.signal !== null) row('Signal', dev.signal);
    if (dev.command !== undefined) row('Command', dev.command);
    if (dev.release !== undefined) row('Release', dev.release);
    if (dev.generation !== undefined) row('Generation', String(dev.generation));
  }
  const output =
    dev?.output !== undefined
      ? `<h2>Output of the process</h2>\n<pre>${dev.output.length > 0 ? escapeHtml(dev.output.join('\n')) : '(no output)'}</pre>\n`
      : '';
  const details = dev
    ? `<p class="env">You see these details because the environment is development. In production only the error id is shown.</p>
<table>${rows.join('')}</table>
${output}`
    : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(kind.title)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; }
.id { color: #555; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { text-align: left; vertical-align: top; padding: .25rem .75rem .25rem 0; }
pre { background: #f4f4f4; padding: 1rem; overflow-x: auto; white-space: pre-wrap; }
.env { color: #8a5300; }
</style>
</head>
<body>
<h1>${escapeHtml(kind.title)}</h1>
<p>${escapeHtml(kind.publicMessage)}</p>
<p class="id">Error ID: <code>${escapeHtml(errorId)}</code></p>
${details}</body>
</html>
`;
}

/** The page for an error the proxy met while serving a request. */
export function errorPage(error: unknown, errorId: string, options: ErrorPageOptions): ErrorPage {
  const code = codeOf(error);
  const kind = kindOf(code);
  const dev = options.environment === 'development' ? devDetails(error) : null;
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (code === 'HF_QUEUE_FULL' && error instanceof CapacityError) headers['retry-after'] = String(QUEUE_FULL_RETRY_AFTER_SECONDS);
  let body: string;
  if (prefersJson(options.accept)) {
    headers['content-type'] = 'application/json; charset=utf-8';
    body = `${JSON.stringify({ error: { code, message: kind.publicMessage, error_id: errorId, ...(dev ?? {}) } })}\n`;
  } else {
    headers['content-type'] = 'text/html; charset=utf-8';
    body = htmlPage(kind, code, errorId, dev);
  }
  return { status: kind.status, code, errorId, headers, body };
}

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'Error';
}
