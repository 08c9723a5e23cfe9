// The signals holdfast answers, and what it does with each (docs/operations.md, "Signals"):
//   SIGTERM, SIGINT, SIGQUIT  graceful stop: no new connections, in-flight requests finish (bounded)
//   SIGHUP                    restart the app (rolling when rolling_restarts is on), like gunicorn's
//                             HUP and `systemctl reload`: nothing is dropped, holdfast goes on
//   SIGUSR1                   reopen the log file (logrotate), retry a failing log destination
//   SIGUSR2 and every other catchable signal whose default would end the process: logged, ignored
//   SIGPIPE                   ignored without a log line (Node's default; see IGNORED)
// Every signal but SIGPIPE is logged (`signal_received`). Once a stop began, a signal only adds a log line.

import type { Control } from '../core/operations';
import type { Logger } from '../log/logger';

/**
 * Signals that end a process by default and that Node lets a program catch, other than those above.
 * Not SIGPIPE: Node ignores it from the start, and the kernel sends it each time holdfast writes to a
 * connection whose other end is gone (a visitor who left): a listener would turn every such write
 * into a "signal received" warning, and a write fails with EPIPE either way.
 */
const IGNORED: readonly NodeJS.Signals[] = ['SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGXCPU', 'SIGXFSZ', 'SIGPOLL', 'SIGSTKFLT', 'SIGPWR', 'SIGTRAP', 'SIGSYS'];
const STOP: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGQUIT'];

export interface SignalActions {
  logger: Logger;
  control: Pick<Control, 'restart'>;
  /** The graceful stop (idempotent). */
  stop(): Promise<void>;
  /** Reopen the log. */
  reopen(): void;
}

/** Installs the handlers; returns what to take off process (only for tests: holdfast keeps them to its exit). */
export function installSignalHandlers(actions: SignalActions): Array<[NodeJS.Signals, () => void]> {
  const { logger } = actions;
  let stopping = false;
  const handlers: Array<[NodeJS.Signals, () => void]> = [];
  const on = (signal: NodeJS.Signals, fn: () => void): void => {
    handlers.push([signal, fn]);
    process.on(signal, fn);
  };

  for (const signal of STOP) {
    on(signal, () => {
      if (stopping) {
        logger.info({ event: 'signal_received', signal, action: 'none' }, `${signal} received: already stopping`);
        return;
      }
      stopping = true;
      logger.info({ event: 'signal_received', signal, action: 'stop' }, `${signal} received: stopping gracefully`);
      void actions.stop();
    });
  }
  on('SIGHUP', () => {
    if (stopping) {
      logger.info({ event: 'signal_received', signal: 'SIGHUP', action: 'none' }, 'SIGHUP received: ignored, holdfast is stopping');
      return;
    }
    logger.info({ event: 'signal_received', signal: 'SIGHUP', action: 'restart' }, 'SIGHUP received: restarting the app (rolling when rolling_restarts is on)');
    let ticket;
    try {
      ticket = actions.control.restart({});
    } catch (error) {
      logger.error({ event: 'signal_restart_failed', err: error }, 'the restart asked for by SIGHUP could not start');
      return;
    }
    ticket.done.then(
      (o) => logger.info({ event: 'signal_restart_finished', outcome: o.outcome, generation: o.generation }, `restart asked for by SIGHUP ${o.outcome}`),
      (error: unknown) => logger.error({ event: 'signal_restart_failed', err: error }, 'the restart asked for by SIGHUP failed'),
    );
  });
  on('SIGUSR1', () => {
    actions.reopen();
    logger.info({ event: 'signal_received', signal: 'SIGUSR1', action: 'reopen_log' }, 'SIGUSR1 received: log file reopened');
  });
  for (const signal of IGNORED) {
    try {
      on(signal, () => logger.warn({ event: 'signal_received', signal, action: 'ignored' }, `${signal} received: ignored (holdfast goes on serving)`));
    } catch {
      // not a signal on this platform
    }
  }
  return handlers;
}
