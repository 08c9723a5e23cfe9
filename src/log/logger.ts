// One log for holdfast and its app processes' output: pino, to a file or stdout — JSON lines, or
// human-readable ones on a terminal (pretty.ts). SIGUSR1 reopens the file (logrotate's copy-less
// rotation). Writing never takes the server down (sink.ts), repeated identical warnings and errors
// are rate-limited (rate-limit.ts), and every error line carries its HF_ code (fields.ts).

import pino from 'pino';
import type { LogLevel } from '../config/types';
import { serializeError, withErrorCode } from './fields';
import { prettyDestination } from './pretty';
import { RateLimiter, type Suppressed } from './rate-limit';
import { LogSink, type SinkStats } from './sink';

/** How often ended rate-limit windows are reported. */
const SWEEP_MS = 1000;

export type Logger = pino.Logger;

export interface LogHandle {
  logger: Logger;
  /** Reopen the log file after it was moved away (SIGUSR1); retries a failing destination at once. */
  reopen(): void;
  /** Write out what is buffered; call before exit. */
  flush(): void;
  /** Lines dropped because the destination failed. */
  stats(): SinkStats;
}

export function createLogger(options: { file: string | undefined; level: LogLevel; name?: string; fd?: number; pretty?: boolean }): LogHandle {
  const sink = new LogSink(options.file, options.fd ?? 1);
  // Human-readable on a terminal (or when asked); JSON lines in a file or a pipe.
  const pretty = !options.file && (options.pretty ?? process.stdout.isTTY === true);
  const limiter = new RateLimiter();
  let reporting = false;
  const report = (s: Suppressed): void => {
    reporting = true;
    try {
      logger.warn({ event: 'log_suppressed', suppressed: s.count, level_suppressed: pino.levels.labels[s.level], sample: s.sample }, `${s.count} similar suppressed: ${s.sample}`);
    } finally {
      reporting = false;
    }
  };
  const logger: Logger = pino(
    {
      level: options.level,
      base: { pid: process.pid, ...(options.name ? { instance: options.name } : {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
      hooks: {
        logMethod(args, method, level) {
          if (reporting) return method.apply(this, args);
          const first: unknown = args[0];
          const fields = typeof first === 'object' && first !== null ? (first as { event?: unknown }) : undefined;
          const message = typeof first === 'string' ? first : typeof args[1] === 'string' ? args[1] : '';
          const event = typeof fields?.event === 'string' ? fields.event : undefined;
          if (limiter.admit(level, message, event, report)) withErrorCode.call(this, args, method as (...a: unknown[]) => void, level);
        },
      },
    },
    pretty ? prettyDestination() : sink,
  );
  // Windows that end in silence still get their "N similar suppressed" line, within a second of
  // their end (a sweep every WINDOW_MS could report up to two windows late).
  setInterval(() => limiter.sweep(Date.now(), report), SWEEP_MS).unref();
  return {
    logger,
    reopen: () => sink.reopen(),
    flush: () => sink.flushSync(),
    stats: () => sink.stats(),
  };
}

/** A logger that writes nowhere, for tests that do not look at the log. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
