// One log for holdfast and its app processes' output: pino, to a file or stdout.
// SIGUSR1 reopens the file (logrotate's copy-less rotation).

import pino from 'pino';
import type { LogLevel } from '../config/types';
import { serializeError, withErrorCode } from './fields';
import { prettyDestination } from './pretty';

export type Logger = pino.Logger;

export interface LogHandle {
  logger: Logger;
  /** Reopen the log file after it was moved away (SIGUSR1). No-op for stdout. */
  reopen(): void;
  /** Write out what is buffered; call before exit. */
  flush(): void;
}

export function createLogger(options: { file: string | undefined; level: LogLevel; name?: string; pretty?: boolean }): LogHandle {
  const destination = options.file
    ? pino.destination({ dest: options.file, append: true, mkdir: true, sync: true })
    : pino.destination({ dest: 1, sync: true });
  const logger = pino(
    {
      level: options.level,
      base: { pid: process.pid, ...(options.name ? { instance: options.name } : {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
      hooks: { logMethod: withErrorCode },
    },
    // Human-readable on a terminal (or when asked); JSON lines in a file or a pipe.
    (options.pretty ?? (!options.file && process.stdout.isTTY === true)) && !options.file ? prettyDestination() : destination,
  );
  return {
    logger,
    reopen: () => {
      if (options.file) destination.reopen();
    },
    flush: () => {
      try {
        destination.flushSync();
      } catch {
        // nothing buffered, or the fd is gone: nothing to save
      }
    },
  };
}

/** A logger that writes nowhere, for tests that do not look at the log. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
