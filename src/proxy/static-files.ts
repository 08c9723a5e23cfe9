// Files under the app's public/ (static_files_dir) answered without the app, as Passenger's Nginx
// does: type, validators and 304, one range (206/416), HEAD, precompressed siblings, a long
// Cache-Control for fingerprinted names, streamed from disk with back-pressure.
//
// Used on both paths: by the proxy, and by the Node hook inside the app process (the hand-off path,
// docs/performance.md), which loads this file by its path. So it imports Node builtins and
// mime-types only, nothing else of holdfast.
//
// Nothing outside the directory is served: a path with a dot segment, a backslash or a NUL, once
// decoded, or a double-encoded dot, backslash or NUL, is answered 400; a file whose real path
// (symlinks resolved) leaves the directory's real path is answered 404. Neither reaches the app.

import fs = require('node:fs');
import path = require('node:path');
import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as MimeTypes from 'mime-types';

// Loaded with the first file served: an app process without static files never parses mime-db.
let mimeTypes: typeof MimeTypes | undefined;
function contentTypeOf(file: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  mimeTypes ??= require('mime-types') as typeof MimeTypes;
  return mimeTypes.contentType(path.extname(file)) || 'application/octet-stream';
}

export interface StaticFilesSettings {
  /** Absolute; may go through a symlink a deploy tool switches (followed at each look-up). */
  root: string;
  /** Cache-Control of fingerprinted names (app-3f2a9c1b.js); '' = none. */
  fingerprintedCacheControl: string;
}

/** How long the root's real path is trusted before it is resolved again (a deploy switches `current`). */
const ROOT_RECHECK_MS = 1000;
/** Memory per download is READ_BUFFERS x READ_CHUNK_BYTES, whatever the file's size. */
const READ_CHUNK_BYTES = 64 * 1024;
const READ_BUFFERS = 4;
/** A content hash of 8+ hex digits before the extension: Sprockets, webpack, esbuild, Propshaft. */
const FINGERPRINTED = /[-.~][0-9a-f]{8,}(\.[A-Za-z0-9]+)+$/i;
// Double-encoded dot, backslash, NUL: harmless to us, but an app or a cache that decodes again sees a traversal.
const DOUBLE_ENCODED = /%(2e|5c|00)/i;

type Lookup =
  | { kind: 'app' }
  | { kind: 'refused'; status: 400 | 404 }
  | { kind: 'file'; file: string; urlPath: string };

function plain(res: ServerResponse, status: number, text: string, head: boolean): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(head ? undefined : text);
}

function statOf(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file, { throwIfNoEntry: false });
  } catch {
    return undefined; // ENOTDIR (a file with a trailing slash), EACCES, ENAMETOOLONG: not ours to serve
  }
}

function accepts(acceptEncoding: string | undefined, coding: string): boolean {
  if (!acceptEncoding) return false;
  for (const part of acceptEncoding.toLowerCase().split(',')) {
    const [name, ...params] = part.split(';').map((s) => s.trim());
    if (name !== coding && name !== '*') continue;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

function etagOf(stat: fs.Stats): string {
  return `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
}

function matchesEtag(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** Since the last modification, to the second (HTTP dates have no more). */
function notModifiedSince(header: string, stat: fs.Stats): boolean {
  const since = Date.parse(header);
  return !Number.isNaN(since) && Math.floor(stat.mtimeMs / 1000) * 1000 <= since;
}

/** One `bytes=` range; 'whole' for none, several, or another unit (a server may ignore them); 'bad' = 416. */
function parseRange(header: string, size: number): { start: number; end: number } | 'whole' | 'bad' {
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header.trim());
  if (!m) return header.includes(',') || !header.trim().startsWith('bytes=') ? 'whole' : 'bad';
  const [, a, b] = m;
  if (a === '' && b === '') return 'bad';
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) return 'bad';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || end < start) return 'bad';
  return { start, end };
}

export class StaticFiles {
  readonly #settings: StaticFilesSettings;
  #rootReal: string | null = null;
  #rootCheckedAt = -Infinity;

  constructor(settings: StaticFilesSettings) {
    this.#settings = settings;
  }

  /** The root's real path, or null when there is no such directory (then every request goes to the app). */
  #root(): string | null {
    const now = performance.now();
    if (now - this.#rootCheckedAt < ROOT_RECHECK_MS) return this.#rootReal;
    this.#rootCheckedAt = now;
    try {
      const real = fs.realpathSync.native(this.#settings.root);
      this.#rootReal = fs.statSync(real).isDirectory() ? real : null;
    } catch {
      this.#rootReal = null;
    }
    return this.#rootReal;
  }

  /** What to do with a GET/HEAD of `url`. Synchronous: the app is not kept waiting on the thread pool. */
  lookup(url: string): Lookup {
    const root = this.#root();
    if (root === null || url.charCodeAt(0) !== 47 /* / */) return { kind: 'app' };
    let end = url.length;
    const q = url.indexOf('?');
    if (q >= 0) end = q;
    const h = url.indexOf('#');
    if (h >= 0 && h < end) end = h;
    const raw = url.slice(0, end);
    if (raw.includes('\\')) return { kind: 'refused', status: 400 };
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      return { kind: 'app' }; // not a valid percent-encoding: cannot name a file
    }
    if (decoded.includes('\0') || decoded.includes('\\') || DOUBLE_ENCODED.test(decoded)) return { kind: 'refused', status: 400 };
    const segments = decoded.split('/');
    if (segments.some((s) => s === '..' || s === '.')) return { kind: 'refused', status: 400 };
    let file = root + decoded;
    let stat = statOf(file);
    if (stat?.isDirectory()) {
      file = path.join(file, 'index.html');
      stat = statOf(file);
    }
    if (!stat?.isFile()) return { kind: 'app' };
    let real: string;
    try {
      real = fs.realpathSync.native(file);
    } catch {
      return { kind: 'app' };
    }
    if (!real.startsWith(root + path.sep)) return { kind: 'refused', status: 404 };
    return { kind: 'file', file: real, urlPath: decoded };
  }

  /** What holdfast answers itself for this request (a file, or a refused path); undefined when the app answers it. */
  claim(method: string | undefined, url: string | undefined): Exclude<Lookup, { kind: 'app' }> | undefined {
    if ((method !== 'GET' && method !== 'HEAD') || url === undefined) return undefined;
    const found = this.lookup(url);
    return found.kind === 'app' ? undefined : found;
  }

  /**
   * Answers the request when it is for a file under the root, or a refused path; false when the app
   * should answer it (another method, no such file, no root).
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const method = req.method;
    const found = this.claim(method, req.url);
    if (found === undefined) return false;
    // A GET/HEAD body (rare, meaningless) is read and dropped, so the connection can go on.
    req.resume();
    const head = method === 'HEAD';
    if (found.kind === 'refused') {
      plain(res, found.status, found.status === 400 ? 'Bad request.\n' : 'Not found.\n', head);
      return true;
    }
    this.#serve(req, res, found.file, found.urlPath, head);
    return true;
  }

  #serve(req: IncomingMessage, res: ServerResponse, file: string, urlPath: string, head: boolean): void {
    const type = contentTypeOf(file);
    // Precompressed siblings, best first; they must be real files inside the root as well.
    let chosen = file;
    let encoding: string | undefined;
    let hasVariants = false;
    for (const [coding, ext] of [['br', '.br'], ['gzip', '.gz']] as const) {
      const sibling = file + ext;
      if (!statOf(sibling)?.isFile()) continue;
      hasVariants = true;
      if (encoding !== undefined || !accepts(req.headers['accept-encoding'], coding)) continue;
      try {
        const real = fs.realpathSync.native(sibling);
        if (real.startsWith(this.#root() + path.sep)) {
          chosen = real;
          encoding = coding;
        }
      } catch {
        // gone meanwhile: serve the plain file
      }
    }
    fs.open(chosen, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW, (openError, fd) => {
      if (res.destroyed) {
        if (!openError) fs.close(fd, () => undefined);
        return;
      }
      if (openError) {
        plain(res, 404, 'Not found.\n', head);
        return;
      }
      fs.fstat(fd, (statError, stat) => {
        if (statError || !stat.isFile() || res.destroyed) {
          fs.close(fd, () => undefined);
          if (!res.destroyed) plain(res, 404, 'Not found.\n', head);
          return;
        }
        this.#answer(req, res, fd, stat, { type, encoding, hasVariants, urlPath, head });
      });
    });
  }

  #answer(
    req: IncomingMessage,
    res: ServerResponse,
    fd: number,
    stat: fs.Stats,
    o: { type: string; encoding: string | undefined; hasVariants: boolean; urlPath: string; head: boolean },
  ): void {
    const etag = etagOf(stat);
    const lastModified = new Date(Math.floor(stat.mtimeMs / 1000) * 1000).toUTCString();
    const headers: Record<string, string | number> = { etag, 'last-modified': lastModified, 'accept-ranges': 'bytes' };
    const cacheControl = this.#settings.fingerprintedCacheControl;
    if (cacheControl !== '' && FINGERPRINTED.test(path.basename(o.urlPath))) headers['cache-control'] = cacheControl;
    if (o.hasVariants) headers['vary'] = 'Accept-Encoding';
    if (o.encoding) headers['content-encoding'] = o.encoding;
    const close = (): void => fs.close(fd, () => undefined);

    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    if (inm !== undefined ? matchesEtag(inm, etag) : ims !== undefined && notModifiedSince(ims, stat)) {
      close();
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers['content-type'] = o.type;
    let start = 0;
    let end = stat.size - 1;
    let status = 200;
    const range = req.headers.range;
    const ifRange = typeof req.headers['if-range'] === 'string' ? req.headers['if-range'].trim() : undefined;
    const rangeApplies = range !== undefined && (ifRange === undefined || ifRange === etag || ifRange === lastModified);
    if (rangeApplies) {
      const r = parseRange(range, stat.size);
      if (r === 'bad') {
        close();
        headers['content-range'] = `bytes */${stat.size}`;
        delete headers['content-type'];
        plainWithHeaders(res, 416, headers, o.head);
        return;
      }
      if (r !== 'whole') {
        ({ start, end } = r);
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${stat.size}`;
      }
    }
    headers['content-length'] = stat.size === 0 ? 0 : end - start + 1;
    res.writeHead(status, headers);
    if (o.head || stat.size === 0) {
      close();
      res.end();
      return;
    }
    streamRange(fd, start, end, res);
  }
}

/**
 * Writes bytes start..end of fd to res through READ_BUFFERS buffers that are reused: a buffer is
 * read into again only once the socket has taken it (the write callback). A read stream would
 * allocate a new buffer per chunk, and V8 frees those only at its next GC: tens of MB for a big file.
 */
function streamRange(fd: number, start: number, end: number, res: ServerResponse): void {
  const free: Buffer[] = [];
  for (let i = 0; i < READ_BUFFERS; i++) free.push(Buffer.allocUnsafeSlow(READ_CHUNK_BYTES));
  let position = start;
  let reading = false;
  let finished = false;
  const stop = (): void => {
    if (finished) return;
    finished = true;
    fs.close(fd, () => undefined);
  };
  res.once('close', stop);
  const pump = (): void => {
    if (finished || reading) return;
    if (position > end) {
      stop();
      res.end();
      return;
    }
    const buffer = free.pop();
    if (buffer === undefined) return; // all in the socket's hands: its callbacks pump again
    reading = true;
    fs.read(fd, buffer, 0, Math.min(buffer.length, end - position + 1), position, (error, bytes) => {
      reading = false;
      if (finished) return;
      if (error || bytes === 0) {
        stop();
        res.destroy(error ?? new Error('the file got shorter while it was sent'));
        return;
      }
      position += bytes;
      res.write(bytes === buffer.length ? buffer : buffer.subarray(0, bytes), (writeError) => {
        if (writeError) return;
        free.push(buffer);
        pump();
      });
      pump();
    });
  };
  pump();
}

function plainWithHeaders(res: ServerResponse, status: number, headers: Record<string, string | number>, head: boolean): void {
  const text = 'Range not satisfiable.\n';
  res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(head ? undefined : text);
}
