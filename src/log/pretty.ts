// The log on a terminal, for a person: pino-pretty turns each JSON line into
// `12:00:01 INFO  [app 4242] app process 4242 ready (generation 1, start)`, with the other fields
// on one line after it. Files and pipes keep the JSON lines that machines read.

import { PinoPretty, isColorSupported } from 'pino-pretty';
import type { DestinationStream } from 'pino';

/** Fields that say nothing new on a terminal: the same on every line, or already in the message. */
const HIDDEN = ['pid', 'hostname', 'instance', 'event', 'app', 'component'].join(',');

export interface PrettyOptions {
  /** Where the text goes: a file descriptor (default 1, standard output) or a stream (tests). */
  destination?: number | NodeJS.WritableStream;
  /** Default: what the terminal supports (NO_COLOR and FORCE_COLOR are honoured). */
  colorize?: boolean;
}

/** A synchronous pino destination that writes human-readable lines. */
export function prettyDestination(options: PrettyOptions = {}): DestinationStream & { flushSync?(): void } {
  return PinoPretty({
    destination: options.destination ?? 1,
    sync: true,
    colorize: options.colorize ?? isColorSupported,
    translateTime: 'SYS:HH:MM:ss',
    ignore: HIDDEN,
    singleLine: true,
    messageFormat: '{if app_pid}[app {app_pid}] {end}{msg}',
    errorLikeObjectKeys: ['err'],
  }) as unknown as DestinationStream;
}
