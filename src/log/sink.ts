// Where log lines go: a file (created 0640) or a descriptor (stdout), written synchronously with no
// buffer of our own, so memory stays flat whatever happens to the disk. A write that fails (ENOSPC,
// EIO, EPIPE, ...) drops the line and counts it; the first failure of an outage says so once on
// stderr; a write is tried again at most every RETRY_MS (and at once after reopen(), SIGUSR1), and
// the first line that gets through is preceded by a `log_resumed` line with the count.

import { closeSync, constants, openSync, writeSync } from 'node:fs';

/** How often, while writes fail, one is tried again. */
export const RETRY_MS = 1_000;
/** A pipe that is full (EAGAIN) is waited on this long in all before the line is dropped. */
const EAGAIN_WAIT_MS = 200;
const EAGAIN_STEP_MS = 5;

export interface SinkStats {
  /** Lines dropped since the sink was made. */
  dropped: number;
  /** True while writes fail. */
  failing: boolean;
}

export class LogSink {
  private fd: number;
  private failing = false;
  private failedCode: string | undefined;
  private droppedNow = 0;
  private droppedTotal = 0;
  private retryAt = 0;
  /** A line was cut off by a failure: the next line starts on a fresh one. */
  private torn = false;

  /**
   * @param file a path, opened for appending (created 0640), or undefined for `fd`.
   * @param now the clock (tests).
   */
  constructor(
    private readonly file: string | undefined,
    private readonly fallbackFd = 1,
    private readonly now: () => number = Date.now,
    private readonly warn: (line: string) => void = warnOnStderr,
  ) {
    this.fd = file === undefined ? fallbackFd : openLogFile(file);
  }

  stats(): SinkStats {
    return { dropped: this.droppedTotal, failing: this.failing };
  }

  /** pino calls this with one serialized line (ending in \n). Never throws. */
  write(line: string): boolean {
    if (this.failing && this.now() < this.retryAt) {
      this.drop();
      return true;
    }
    if (this.failing) {
      const resumed = `${this.torn ? '\n' : ''}${JSON.stringify({ level: 'warn', time: new Date(this.now()).toISOString(), pid: process.pid, event: 'log_resumed', dropped: this.droppedNow, msg: `log writes work again; ${this.droppedNow} lines were dropped while they failed (${this.failedCode})` })}\n`;
      if (!this.attempt(resumed)) {
        this.drop();
        return true;
      }
      this.failing = false;
      this.droppedNow = 0;
    }
    if (!this.attempt(line)) this.drop();
    return true;
  }

  /** Reopen the file (logrotate moved it, or space is back): the next line is tried at once. */
  reopen(): void {
    this.retryAt = 0;
    if (this.file === undefined) return;
    let fd: number;
    try {
      fd = openLogFile(this.file);
    } catch (error) {
      this.fail(error);
      return;
    }
    const old = this.fd;
    this.fd = fd;
    try {
      closeSync(old);
    } catch {
      // already gone
    }
  }

  flushSync(): void {
    // nothing is buffered
  }

  close(): void {
    if (this.file === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
  }

  /** Writes all of `text`; false (and the sink failing) when it could not. */
  private attempt(text: string): boolean {
    const buffer = Buffer.from(text);
    let offset = 0;
    // A full pipe is waited on a little, but not again while writes are failing: a stuck reader
    // must not stall the server once a second.
    let waitedMs = this.failing ? EAGAIN_WAIT_MS : 0;
    while (offset < buffer.length) {
      try {
        offset += writeSync(this.fd, buffer, offset, buffer.length - offset);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN' && waitedMs < EAGAIN_WAIT_MS) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, EAGAIN_STEP_MS);
          waitedMs += EAGAIN_STEP_MS;
          continue;
        }
        if (offset > 0) this.torn = true;
        this.fail(error);
        return false;
      }
    }
    this.torn = false;
    return true;
  }

  private fail(error: unknown): void {
    this.retryAt = this.now() + RETRY_MS;
    if (this.failing) return;
    this.failing = true;
    this.failedCode = (error as NodeJS.ErrnoException).code ?? String(error);
    const where = this.file ?? (this.fallbackFd === 1 ? 'standard output' : `fd ${this.fallbackFd}`);
    this.warn(
      `holdfast: cannot write the log to ${where} (${this.failedCode}): log lines are dropped and counted until writes work again (retried every ${RETRY_MS / 1000} s, and at once on SIGUSR1); requests are still served\n`,
    );
  }

  private drop(): void {
    this.droppedNow++;
    this.droppedTotal++;
  }
}

function openLogFile(file: string): number {
  // 0640: the log may hold paths, app output and error details that are nobody else's business.
  return openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o640);
}

function warnOnStderr(line: string): void {
  try {
    writeSync(2, line);
  } catch {
    // stderr is gone too: nothing left to tell
  }
}
