// The group's observers, composed explicitly by the supervisor: the log (every spawn, stop with its
// reason, restart step, spawn error and change of the flag, each with a stable `event`), metrics,
// and the proxy's upstream keep-alive sockets closed for processes that go away.

import type { AppProcess } from '../core/app-process';
import type { GroupObserver } from '../core/group/group';
import { spawnErrorSnapshot } from '../core/group/inspection';
import type { UpstreamTarget } from '../core/process-handle';
import type { Logger } from '../log/logger';

/** One observer that calls each of `observers` in order. */
export function composeObservers(...observers: GroupObserver[]): GroupObserver {
  const composed: GroupObserver = {};
  const keys = new Set(observers.flatMap((o) => Object.keys(o))) as Set<keyof GroupObserver>;
  for (const key of keys) {
    const fns = observers.map((o) => o[key]).filter((f): f is NonNullable<typeof f> => f !== undefined) as Array<(...args: unknown[]) => void>;
    (composed as Record<string, (...args: unknown[]) => void>)[key] = (...args: unknown[]) => {
      for (const fn of fns) fn(...args);
    };
  }
  return composed;
}

/** Closes the proxy's kept-alive sockets to a process as soon as it stops taking requests. */
export function upstreamCloser(proxy: { closeUpstream(target: UpstreamTarget): void }): GroupObserver {
  const close = (p: AppProcess) => {
    if (p.handle) proxy.closeUpstream(p.handle.target);
  };
  return { processDraining: close, processStopped: close, processDied: close };
}

export function loggingObserver(log: Logger): GroupObserver {
  return {
    spawnStarted: (i) => log.debug({ event: 'spawn_started', generation: i.generation, cause: i.cause, release: i.release }, 'spawning an app process'),
    spawned: (p, i) =>
      log.info(
        { event: 'process_ready', app_pid: p.pid, generation: p.generation, cause: i.cause, spawn_ms: i.durationMs, release: p.handle?.release, commit: p.handle?.commit },
        `app process ${p.pid} ready (generation ${p.generation}, ${i.cause})`,
      ),
    spawnFailed: (e, i) =>
      log.error(
        { event: 'spawn_error', error_id: e.details.errorId, code: e.code, cause: i.cause, resisting: i.resisting, spawn_error: spawnErrorSnapshot(e) },
        `spawn error ${e.details.errorId}: ${e.message}${e.details.outputTail.length ? '\n' + e.details.outputTail.slice(-20).join('\n') : ''}`,
      ),
    processDraining: (p, reason) =>
      log.info({ event: 'process_draining', app_pid: p.pid, generation: p.generation, reason, sessions: p.requests.inFlight(), connections: p.connectionCount }, `draining app process ${p.pid} (${reason})`),
    processStopped: (p, reason, exit) =>
      log.info(
        { event: 'process_stopped', app_pid: p.pid, generation: p.generation, reason, exit_code: exit.code, signal: exit.signal, processed: p.requests.seen() },
        `app process ${p.pid} stopped (${reason})`,
      ),
    processDied: (p, exit, crash) => {
      const how = exit.signal ?? `exit code ${exit.code}`;
      if (!crash) {
        log.warn({ event: 'process_died', app_pid: p.pid, generation: p.generation, exit_code: exit.code, signal: exit.signal }, `app process ${p.pid} died unexpectedly (${how})`);
        return;
      }
      const requests = crash.requests.map((r) => ({ method: r.method, path: r.path, request_id: r.requestId }));
      const what = requests.length > 0 ? requests.map((r) => `${r.method} ${r.path} [${r.request_id}]`).join(', ') : 'handed-off connections';
      log.error(
        { event: 'process_crashed', app_pid: p.pid, generation: p.generation, exit_code: exit.code, signal: exit.signal, requests },
        `app process ${p.pid} died (${how}) while serving ${what}: a crash, not a deployment error; it is replaced, and the requests are not retried`,
      );
    },
    resistingSet: (e) =>
      log.error(
        { event: 'resisting_started', error_id: e.details.errorId, code: e.code, resisting_deployment_error: true },
        `resisting deployment error ${e.details.errorId}: the processes that run keep serving; nothing spawns until \`holdfast restart\` or \`holdfast resume\``,
      ),
    resistingCleared: (why) => log.warn({ event: 'resisting_cleared', resisting_deployment_error: false, why }, `no longer resisting deployment error (${why})`),
    restartStarted: (i) =>
      log.info({ event: 'restart_started', kind: i.kind, generation: i.generation, deadline_ms: i.deadlineMs }, `${i.kind} restart to generation ${i.generation} started (deadline ${Math.round(i.deadlineMs / 1000)} s)`),
    restartProgress: (p) => log.info({ event: 'restart_progress', kind: p.kind, generation: p.generation, replaced: p.replaced, total: p.total }, `restart: ${p.replaced} of ${p.total} replaced`),
    restartFinished: (o) => {
      const line = `${o.kind} restart to generation ${o.generation} ${o.outcome} (${o.replaced} of ${o.total} replaced)`;
      if (o.outcome === 'succeeded' || o.outcome === 'superseded') log.info({ event: 'restart_finished', outcome: o.outcome, generation: o.generation }, line);
      else log.error({ event: 'restart_finished', outcome: o.outcome, generation: o.generation, error_id: o.error?.error_id, code: o.error?.code }, line);
    },
  };
}
