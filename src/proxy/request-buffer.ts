// Request buffering (Passenger's): for processes with a concurrency limit, the visitor's body is
// read completely before a process is taken, so a slow upload holds a few KiB of memory or a temp
// file instead of a single-threaded process. In memory up to MEMORY_BUFFER_BYTES, then spooled to a
// private file (0600) in a private dir (0700) that holdfast makes under data_buffer_dir; every file
// is removed when its request ends, however it ends, and the dir when the proxy closes.

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdtemp, rm, unlink } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

/** Bodies up to this size stay in memory (Passenger keeps 128 KiB in memory too). */
export const MEMORY_BUFFER_BYTES = 128 * 1024;

export interface RequestBufferingSettings {
  /** The dir holdfast makes its private spool dir in (data_buffer_dir). */
  dir: string;
  /** 0 = unlimited (max_request_body_size). */
  maxBodyBytes: number;
  memoryBytes?: number;
}

export interface BufferedBody {
  readonly bytes: number;
  /** The spool file, or null when the body stayed in memory. */
  readonly file: string | null;
  /** The body for the app, from the start (memory, or a fresh stream of the file). */
  open(): Buffer | Readable;
  /** Removes the spool file; idempotent. */
  dispose(): void;
}

export type BufferOutcome =
  | { kind: 'buffered'; body: BufferedBody }
  /** Over maxBodyBytes (by Content-Length before reading, or while reading). */
  | { kind: 'too-large' }
  /** The visitor went away before the body was complete. */
  | { kind: 'gone' }
  /** The spool file could not be written (disk full, permissions). */
  | { kind: 'failed'; error: Error };

/** The headers for the app with a buffered body: its length, never chunked (flat [name, value, ...]). */
export function withContentLength(headers: string[], bytes: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (name === 'content-length' || name === 'transfer-encoding') continue;
    out.push(headers[i]!, headers[i + 1]!);
  }
  out.push('content-length', String(bytes));
  return out;
}

function memoryBody(chunks: Buffer[], bytes: number): BufferedBody {
  const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes);
  return { bytes, file: null, open: () => whole, dispose: () => undefined };
}

export class RequestBuffers {
  readonly #settings: RequestBufferingSettings;
  readonly #memoryBytes: number;
  #dir: Promise<string> | null = null;
  #closed = false;
  /** Spool files not yet removed, to remove them all at close. */
  readonly #files = new Set<string>();

  constructor(settings: RequestBufferingSettings) {
    this.#settings = settings;
    this.#memoryBytes = settings.memoryBytes ?? MEMORY_BUFFER_BYTES;
  }

  /** Over the limit by its declared length: answer 413 without reading a byte. */
  tooLarge(req: IncomingMessage): boolean {
    const max = this.#settings.maxBodyBytes;
    const declared = req.headers['content-length'];
    return max > 0 && declared !== undefined && Number(declared) > max;
  }

  #spoolDir(): Promise<string> {
    this.#dir ??= (async () => {
      const dir = await mkdtemp(join(this.#settings.dir, 'holdfast-buffer-'));
      await chmod(dir, 0o700);
      return dir;
    })();
    // A failure (the dir vanished, a full disk) is tried again by the next request.
    this.#dir.catch(() => (this.#dir = null));
    return this.#dir;
  }

  #remove(file: string): void {
    if (!this.#files.delete(file)) return;
    unlink(file).catch(() => undefined);
  }

  /** Reads the whole body of `req`. Never rejects. */
  read(req: IncomingMessage): Promise<BufferOutcome> {
    return new Promise((resolve) => {
      const max = this.#settings.maxBodyBytes;
      const chunks: Buffer[] = [];
      let bytes = 0;
      let file: string | null = null;
      let out: WriteStream | null = null;
      let opening = false;
      let ended = false;
      let done = false;

      const finish = (outcome: BufferOutcome): void => {
        if (done) return;
        done = true;
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('close', onClose);
        if (outcome.kind !== 'buffered') {
          out?.destroy();
          if (file !== null) this.#remove(file);
        }
        resolve(outcome);
      };

      const spooled = (path: string): BufferedBody => ({
        bytes,
        file: path,
        open: () => createReadStream(path),
        dispose: () => this.#remove(path),
      });

      const startSpool = (): void => {
        opening = true;
        req.pause();
        this.#spoolDir().then(
          (dir) => {
            if (done) return;
            if (this.#closed) return finish({ kind: 'failed', error: new Error('the proxy is closing') });
            file = join(dir, randomBytes(12).toString('hex'));
            this.#files.add(file);
            out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
            out.on('error', (error) => finish({ kind: 'failed', error }));
            for (const chunk of chunks.splice(0)) out.write(chunk);
            opening = false;
            if (ended) complete();
            else req.resume();
          },
          (error: Error) => finish({ kind: 'failed', error }),
        );
      };

      const onData = (chunk: Buffer): void => {
        bytes += chunk.length;
        if (max > 0 && bytes > max) return finish({ kind: 'too-large' });
        if (out !== null) {
          if (!out.write(chunk)) {
            req.pause();
            out.once('drain', () => req.resume());
          }
          return;
        }
        chunks.push(chunk);
        if (!opening && bytes > this.#memoryBytes) startSpool();
      };
      const onEnd = (): void => {
        ended = true;
        if (!opening) complete(); // else startSpool completes it once the file is open
      };
      const complete = (): void => {
        if (out === null) return finish({ kind: 'buffered', body: memoryBody(chunks, bytes) });
        const path = file!;
        out.end(() => finish({ kind: 'buffered', body: spooled(path) }));
      };
      const onClose = (): void => {
        if (!req.complete) finish({ kind: 'gone' });
      };

      req.on('data', onData);
      req.on('end', onEnd);
      req.on('close', onClose);
      if (req.readableEnded) onEnd();
    });
  }

  /** Removes every spool file left and the private dir. */
  async close(): Promise<void> {
    this.#closed = true;
    const dir = this.#dir;
    this.#files.clear();
    if (dir === null) return;
    const path = await dir.catch(() => null);
    if (path !== null) await rm(path, { recursive: true, force: true });
  }
}
