// The log on a terminal, for a person: pino-pretty turns each JSON line into
// `[12:00:01] INFO: [app 4242] app process 4242 ready (generation 1, start) {"generation":1,...}`.
// An error is its message and HF_ code on the same line; only a surprise (an error with a stack)
// takes more lines. Files and pipes keep the JSON lines that machines read.

import { PinoPretty, isColorSupported } from 'pino-pretty';
import type { DestinationStream } from 'pino';

/** Fields that say nothing new on a terminal (the same on every line), or that the message shows. */
const HIDDEN = ['pid', 'hostname', 'instance', 'event', 'app', 'component', 'app_pid', 'err', 'code'].join(',');

export interface PrettyOptions {
  /** Where the text goes: a file descriptor (default 1, standard output) or a stream (tests). */
  destination?: number | NodeJS.WritableStream;
  /** Default: what the terminal supports (NO_COLOR and FORCE_COLOR are honoured). */
  colorize?: boolean;
}

/** The message part of a line: `[app PID] message: error message (HF_CODE)`, then a stack if any. */
export function prettyMessage(log: Record<string, unknown>, messageKey = 'msg'): string {
  const err = (typeof log['err'] === 'object' && log['err'] !== null ? log['err'] : {}) as { message?: unknown; stack?: unknown };
  let text = `${log['app_pid'] !== undefined ? `[app ${String(log['app_pid'])}] ` : ''}${String(log[messageKey] ?? '')}`;
  if (typeof err.message === 'string' && !text.includes(err.message)) text += `: ${err.message}`;
  if (typeof log['code'] === 'string') text += ` (${log['code']})`;
  if (typeof err.stack === 'string') text += `\n${err.stack.replace(/^/gm, '    ')}`;
  return text;
}

/** A synchronous pino destination that writes human-readable lines. */
export function prettyDestination(options: PrettyOptions = {}): DestinationStream {
  return PinoPretty({
    destination: options.destination ?? 1,
    sync: true,
    colorize: options.colorize ?? isColorSupported,
    translateTime: 'SYS:HH:MM:ss',
    ignore: HIDDEN,
    singleLine: true,
    errorLikeObjectKeys: [],
    messageFormat: (log, messageKey) => prettyMessage(log, messageKey),
  }) as unknown as DestinationStream;
}
