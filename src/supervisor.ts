// Composition root: wires config, logger, spawner, pool, proxy and admin API; start / close / signals.

import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdminServer, type AdminServer } from './admin/server';
import { createInstance, type Instance } from './admin/instance';
import { DURATION_BUCKETS, createMetrics } from './admin/metrics';
import { startWebListeners } from './admin/web';
import type { HoldfastConfig } from './config/types';
import { systemClock } from './core/clock';
import type { Control, PoolSnapshot, RestartTicket } from './core/control';
import { Group, spawnErrorSnapshot, type GroupObserver } from './core/group';
import { Pool } from './core/pool';
import { DEFAULT_BUSY_EVENT_LOOP_UTILIZATION, DEFAULT_BUSY_SESSIONS } from './core/scaling';
import { HoldfastError } from './errors';
import type { LogHandle, Logger } from './log/logger';
import { DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_KEEP_ALIVE_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, createProxy, type Proxy } from './proxy/server';
import { ChildSpawner } from './spawn/child-spawner';
import { checkLaunchable } from './spawn/launchers';
import { startWatchdog } from './spawn/watchdog';
import { VERSION } from './version';

export interface SupervisorOptions {
  log: LogHandle;
  /** Install SIGINT/SIGTERM (clean stop) and SIGUSR1 (reopen log) handlers. The CLI sets it. */
  handleSignals?: boolean;
  /** Where instance dirs live; default $HOLDFAST_INSTANCE_REGISTRY_DIR or the system temp dir. */
  registryDir?: string;
}

export interface RunningSupervisor {
  /** The bound public address (port resolved when 0 was asked). */
  readonly address: { address: string; port: number };
  readonly control: Control;
  /** Settles when holdfast has stopped completely (all app processes gone). */
  readonly closed: Promise<void>;
  /** The clean stop; idempotent. */
  close(): Promise<void>;
}

/** How often tmp/restart.txt is looked at; Passenger only looks when a request arrives. */
const RESTART_TXT_POLL_MS = 1000;
/** Between SIGTERM and SIGKILL when stopping an app process. */
const TERMINATE_GRACE_MS = 5000;
const USAGE_SAMPLE_INTERVAL_MS = 2000;
const TICK_INTERVAL_MS = 500;
/** How long in-flight requests may run on after a stop was asked for. */
const STOP_GRACE_MS = 30_000;

/**
 * Starts holdfast; resolves once min_instances processes were attempted and the public port listens.
 * Rejects with a HoldfastError (HF_APP_DIR, HF_LISTEN, HF_INSTANCE_EXISTS, ...) and leaves nothing
 * running when it cannot start.
 */
export async function startSupervisor(config: HoldfastConfig, options: SupervisorOptions): Promise<RunningSupervisor> {
  const logger = options.log.logger;
  // Fail fast on an app that cannot be found, before anything is started.
  checkLaunchable(config.appType, await resolveAppDir(config.appDir), { ...appSettings(config), ruby: config.ruby, python: config.python });

  const cleanups: Array<() => Promise<void>> = [];
  const undo = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    const instance = await createInstance({
      name: config.name,
      address: config.address,
      port: config.port,
      appRoot: config.appDir,
      ...(options.registryDir ? { registryDir: options.registryDir } : {}),
    });
    cleanups.push(() => instance.remove());

    const socketDir = await mkdtemp(join(tmpdir(), 'hf-'));
    cleanups.push(() => rm(socketDir, { recursive: true, force: true }));
    const watchdog = startWatchdog();
    cleanups.push(() => watchdog.close());

    const appLogger = logger.child({ app: config.name });
    // The hand-off path needs the hook (a Node app) and per-connection balancing (no concurrency limit).
    const handoff = config.connectionHandoff && config.appType === 'node' && config.concurrency === 0;
    // pool and group come below; the metrics only read them once serving.
    const metrics = createMetrics({ snapshot: () => withSpawnInfo(pool.snapshot(), spawner), flush: () => group.flushHandedOff(), version: VERSION, instance: instance.name });
    const spawner = new ChildSpawner({
      appDir: config.appDir,
      ...appSettings(config),
      appType: config.appType,
      ruby: config.ruby,
      python: config.python,
      spawnMethod: config.spawnMethod,
      environment: config.environment,
      envvars: config.envvars,
      startTimeoutMs: config.startTimeoutMs,
      socketDir,
      watchdog,
      onOutput: (line, meta) => appLogger.info({ app_pid: meta.pid, stream: meta.stream }, line),
      onPreloader: (event, p) =>
        appLogger.info(
          { event: `preloader_${event}`, preloader_pid: p.pid, generation: p.generation, release: p.release },
          `preloader ${p.pid} ${event === 'ready' ? 'loaded the app' : 'stopped'} (generation ${p.generation})`,
        ),
      ...(handoff
        ? {
            handoff: {
              requestIdHeader: 'x-request-id',
              readinessPath: config.readinessPath ?? null,
              maxRequests: config.maxRequests,
              headersTimeoutMs: DEFAULT_HEADERS_TIMEOUT_MS,
              requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
              keepAliveTimeoutMs: DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
              buckets: DURATION_BUCKETS,
            },
            onRequestStats: (stats) => metrics.handedOffRequests(stats),
          }
        : {}),
    });

    const pool = new Pool(config.maxPoolSize);
    let proxy: Proxy | undefined;
    const group = new Group(
      {
        name: config.name,
        appRoot: config.appDir,
        environment: config.environment,
        minInstances: config.minInstances,
        maxPoolSize: config.maxPoolSize,
        concurrency: config.concurrency,
        poolIdleTimeMs: config.poolIdleTimeMs,
        maxRequests: config.maxRequests,
        memoryLimitBytes: config.memoryLimitBytes,
        busyEventLoopUtilization: DEFAULT_BUSY_EVENT_LOOP_UTILIZATION,
        busySessions: DEFAULT_BUSY_SESSIONS,
        maxRequestQueueSize: config.maxRequestQueueSize,
        drainTimeoutMs: config.drainTimeoutMs,
        terminateGraceMs: TERMINATE_GRACE_MS,
        rollingRestarts: config.rollingRestarts,
        resistDeploymentErrors: config.resistDeploymentErrors,
        probationMs: config.probationMs,
        usageSampleIntervalMs: USAGE_SAMPLE_INTERVAL_MS,
        tickIntervalMs: TICK_INTERVAL_MS,
      },
      {
        spawner,
        clock: systemClock,
        poolRoom: pool,
        observer: metrics.observe(config.name, groupLogger(logger.child({ app: config.name }), () => proxy)),
      },
    );
    pool.add(group);
    cleanups.push(() => spawner.close());
    cleanups.push(() => pool.close());

    proxy = createProxy({
      sessions: group,
      ...(handoff ? { connections: group } : {}),
      environment: config.environment,
      logger,
      onRequestDone: (info) => metrics.requestDone(info),
      ...(config.readinessPath ? { readiness: { path: config.readinessPath, ready: () => group.list().some((p) => p.state === 'enabled') } } : {}),
    });
    const bound = await proxy.listen(config.port, config.address);
    const proxyRef = proxy;
    cleanups.push(() => proxyRef.close(0));
    await instance.update({ port: bound.port });

    let closing: Promise<void> | undefined;
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => (resolveClosed = r));
    const signalHandlers: Array<[NodeJS.Signals, () => void]> = [];

    const control: Control = {
      snapshot: () => withSpawnInfo(pool.snapshot(), spawner),
      restart: (o): RestartTicket => group.restart(o),
      resume: () => group.resume(),
      stop: () => close(),
    };

    const admin: AdminServer = await startAdminServer({ instance, control, logger, version: VERSION, routes: [metrics.route()] });
    cleanups.push(() => admin.close());
    const web = await startWebListeners({ statusAddress: config.statusAddress, metricsAddress: config.metricsAddress, instance, control, metrics, logger, version: VERSION });
    cleanups.push(() => web.close());
    if (web.statusUrl || web.metricsUrl) await instance.update({ status_url: web.statusUrl, metrics_url: web.metricsUrl });
    const stopWatching = watchRestartTxt(config.appDir, () => {
      logger.info({ app: config.name }, 'tmp/restart.txt changed: restarting');
      void control.restart({}).done;
    });

    const close = (): Promise<void> => {
      if (closing) return closing;
      closing = (async () => {
        logger.info('stopping: no new requests; in-flight ones may finish');
        stopWatching();
        for (const [sig, fn] of signalHandlers) process.off(sig, fn);
        // Visitors' requests finish while their processes drain; both are bounded.
        await Promise.all([proxyRef.close(STOP_GRACE_MS), pool.close()]);
        await spawner.close(); // preloaders, once no process of theirs is left
        await Promise.all([admin.close(), web.close()]);
        await watchdog.close();
        await rm(socketDir, { recursive: true, force: true });
        await instance.remove();
        logger.info('stopped');
        options.log.flush();
        resolveClosed();
      })();
      return closing;
    };

    if (options.handleSignals) {
      const stop = () => void close();
      const reopen = () => {
        options.log.reopen();
        logger.info('log file reopened');
      };
      signalHandlers.push(['SIGINT', stop], ['SIGTERM', stop], ['SIGUSR1', reopen]);
      for (const [sig, fn] of signalHandlers) process.on(sig, fn);
    }

    logger.info(
      { address: bound.address, port: bound.port, app_root: config.appDir, app_type: config.appType, app_type_reason: config.appTypeReason, instance: instance.name, environment: config.environment, version: VERSION },
      `holdfast ${VERSION} serving ${config.appDir} on http://${bound.address}:${bound.port}`,
    );
    await group.start();
    return { address: bound, control, closed, close };
  } catch (err) {
    await undo();
    throw err;
  }
}

function appSettings(config: HoldfastConfig): { appStartCommand?: string; startupFile?: string } {
  return {
    ...(config.appStartCommand !== undefined ? { appStartCommand: config.appStartCommand } : {}),
    ...(config.startupFile !== undefined ? { startupFile: config.startupFile } : {}),
  };
}

/** Status and metrics show each group's app type and, for smart spawning, its preloaders. */
function withSpawnInfo(snapshot: PoolSnapshot, spawner: ChildSpawner): PoolSnapshot {
  const preloaders = spawner.smart ? spawner.preloaderInfo() : undefined;
  const spawnMethod = spawner.appType === 'rack' ? (spawner.smart ? 'smart' : 'direct') : 'direct';
  return {
    ...snapshot,
    groups: snapshot.groups.map((g) => ({ ...g, app_type: spawner.appType, spawn_method: spawnMethod, ...(preloaders ? { preloaders } : {}) })),
  };
}

async function resolveAppDir(appDir: string): Promise<string> {
  try {
    return await realpath(appDir);
  } catch (cause) {
    throw new HoldfastError('HF_APP_DIR', `app directory ${appDir} does not exist`, { cause });
  }
}

/** Polls <app>/tmp/restart.txt; a new modification time (or a new file) asks for a restart. */
function watchRestartTxt(appDir: string, onTouch: () => void): () => void {
  const file = join(appDir, 'tmp', 'restart.txt');
  const listener = (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs !== 0 && curr.mtimeMs !== prev.mtimeMs) onTouch();
  };
  const watcher = watchFile(file, { interval: RESTART_TXT_POLL_MS, persistent: false }, listener);
  watcher.unref?.();
  return () => unwatchFile(file, listener);
}

/** Every spawn, stop (with its reason), restart step, spawn error and change of the flag is logged. */
function groupLogger(log: Logger, proxy: () => Proxy | undefined): GroupObserver {
  const forget = (p: { handle?: { target: Parameters<Proxy['forgetTarget']>[0] } | undefined }) => {
    if (p.handle) proxy()?.forgetTarget(p.handle.target);
  };
  return {
    spawnStarted: (i) => log.debug({ generation: i.generation, cause: i.cause, release: i.release }, 'spawning an app process'),
    spawned: (p, i) =>
      log.info(
        { app_pid: p.pid, generation: p.generation, cause: i.cause, spawn_ms: i.durationMs, release: p.handle?.release, commit: p.handle?.commit },
        `app process ${p.pid} ready (generation ${p.generation}, ${i.cause})`,
      ),
    spawnFailed: (e, i) =>
      log.error(
        { error_id: e.details.errorId, code: e.code, cause: i.cause, resisting: i.resisting, spawn_error: spawnErrorSnapshot(e) },
        `spawn error ${e.details.errorId}: ${e.message}${e.details.outputTail.length ? '\n' + e.details.outputTail.slice(-20).join('\n') : ''}`,
      ),
    processDraining: (p, reason) => {
      forget(p);
      log.info({ app_pid: p.pid, generation: p.generation, reason, sessions: p.load(), connections: p.connections }, `draining app process ${p.pid} (${reason})`);
    },
    processStopped: (p, reason, exit) => {
      forget(p);
      log.info({ app_pid: p.pid, generation: p.generation, reason, exit_code: exit.code, signal: exit.signal, processed: p.requestsSeen() }, `app process ${p.pid} stopped (${reason})`);
    },
    processDied: (p, exit) => {
      forget(p);
      log.warn({ app_pid: p.pid, generation: p.generation, exit_code: exit.code, signal: exit.signal }, `app process ${p.pid} died unexpectedly (${exit.signal ?? `exit code ${exit.code}`})`);
    },
    resistingSet: (e) =>
      log.error({ error_id: e.details.errorId, resisting_deployment_error: true }, `resisting deployment error ${e.details.errorId}: the processes that run keep serving; nothing spawns until \`holdfast restart\` or \`holdfast resume\``),
    resistingCleared: (why) => log.warn({ resisting_deployment_error: false, why }, `no longer resisting deployment error (${why})`),
    restartStarted: (i) => log.info({ kind: i.kind, generation: i.generation }, `${i.kind} restart to generation ${i.generation} started`),
    restartProgress: (p) => log.info({ kind: p.kind, generation: p.generation, replaced: p.replaced, total: p.total }, `restart: ${p.replaced} of ${p.total} replaced`),
    restartFinished: (o) => {
      const line = `${o.kind} restart to generation ${o.generation} ${o.outcome} (${o.replaced} of ${o.total} replaced)`;
      if (o.outcome === 'succeeded') log.info({ outcome: o.outcome, generation: o.generation }, line);
      else log.error({ outcome: o.outcome, generation: o.generation, error_id: o.error?.error_id }, line);
    },
  };
}

export type { Instance };
