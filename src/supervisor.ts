// Composition root: wires config, logger, spawner, pool, proxy and admin API; start / close / signals.
// Everything a start acquires goes on one ResourceStack, unwound by a failed start and by close().

import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startAdminServer } from './admin/server';
import { createInstance, type Instance } from './admin/instance';
import { DURATION_BUCKETS, createMetrics } from './admin/metrics';
import { startWebListeners } from './admin/web';
import type { HoldfastConfig } from './config/types';
import { systemClock } from './core/clock';
import { Group } from './core/group/group';
import type { Control } from './core/operations';
import { Pool } from './core/pool';
import { HoldfastError } from './errors';
import type { LogHandle } from './log/logger';
import { connectionCap } from './proxy/connection-cap';
import { DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_KEEP_ALIVE_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, createProxy } from './proxy/server';
import { StaticFiles, type StaticFilesSettings } from './proxy/static-files';
import { ChildSpawner } from './spawn/child-spawner';
import { checkLaunchable } from './spawn/launchers';
import { startWatchdog } from './spawn/watchdog';
import { groupOptions, handoffMode } from './supervisor/group-options';
import { composeObservers, loggingObserver, upstreamCloser } from './supervisor/observers';
import { ResourceStack } from './supervisor/resources';
import { installSignalHandlers } from './supervisor/signals';
import { VERSION } from './version';

export interface SupervisorOptions {
  log: LogHandle;
  /** Install SIGINT/SIGTERM (clean stop) and SIGUSR1 (reopen log) handlers. The CLI sets it. */
  handleSignals?: boolean;
  /** Where instance dirs live; default $HOLDFAST_INSTANCE_REGISTRY_DIR or the system temp dir. */
  registryDir?: string;
  /** Called once the app serves (the CLI says where, also when the log goes to a file). */
  onListening?(bound: { address: string; port: number }): void;
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
/** How long in-flight requests may run on after a stop was asked for. */
const STOP_GRACE_MS = 30_000;

/**
 * Starts holdfast; resolves once min_instances processes were attempted and the public port listens.
 * Rejects with a HoldfastError (HF_APP_DIR, HF_LISTEN, HF_INSTANCE_EXISTS, a SpawnError when no
 * process of the app could ever become ready, ...) and leaves nothing running when it cannot start.
 */
export async function startSupervisor(config: HoldfastConfig, options: SupervisorOptions): Promise<RunningSupervisor> {
  const logger = options.log.logger;
  // Fail fast on an app that cannot be found, before anything is started.
  checkLaunchable(config.appType, await resolveAppDir(config.appDir), { ...appSettings(config), ruby: config.ruby, python: config.python });

  const resources = new ResourceStack();
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      logger.info({ event: 'stopping' }, 'stopping: no new requests; in-flight ones may finish');
      await resources.unwind(true, (name, err) => logger.error({ event: 'stop_error', resource: name, err }, `stopping ${name} failed`));
      logger.info({ event: 'stopped' }, 'stopped');
      options.log.flush();
      resolveClosed();
    })();
    return closing;
  };

  try {
    const instance = await createInstance({
      name: config.name,
      address: config.address,
      port: config.port,
      appRoot: config.appDir,
      ...(options.registryDir ? { registryDir: options.registryDir } : {}),
    });
    resources.defer('instance dir', () => instance.remove());
    const socketDir = await mkdtemp(join(tmpdir(), 'hf-'));
    resources.defer('socket dir', () => rm(socketDir, { recursive: true, force: true }));
    const watchdog = startWatchdog({ dirs: [socketDir] });
    resources.defer('watchdog', () => watchdog.close());

    const pool = new Pool(config.maxPoolSize);
    const metrics = createMetrics({ snapshot: () => pool.snapshot(), flush: () => pool.flushHandedOff(), version: VERSION, instance: instance.name });
    const control: Control = {
      snapshot: () => pool.snapshot(),
      restart: (o) => pool.restart(o),
      resume: () => pool.resume(),
      stop: close,
    };
    const admin = await startAdminServer({ instance, control, logger, version: VERSION, routes: [metrics.route()] });
    resources.defer('admin API', () => admin.close());
    const web = await startWebListeners({ statusAddress: config.statusAddress, metricsAddress: config.metricsAddress, instance, control, metrics, logger, version: VERSION });
    resources.defer('status and metrics listeners', () => web.close());
    if (web.statusUrl || web.metricsUrl) await instance.update({ status_url: web.statusUrl, metrics_url: web.metricsUrl });

    // The hand-off path (group-options.ts handoffMode): Node apps' hook, or the Rack loader.
    const handoff = handoffMode(config) !== 'off';
    if (config.connectionHandoff && (config.appType === 'node' || config.appType === 'rack') && config.maxRequestTimeMs > 0) {
      logger.info({ event: 'handoff_off', why: 'max_request_time' }, 'max_request_time is set: requests are proxied, connections are not handed off');
    }
    // Followed through the app dir as given (a deploy tool's `current` symlink) at each look-up.
    const statics: StaticFilesSettings | null = config.staticFiles
      ? { root: resolve(config.appDir, config.staticFilesDir), fingerprintedCacheControl: config.staticFilesCacheControl }
      : null;
    const proxy = createProxy({
      connectionCap: connectionCap(config.maxConnections, config.maxPoolSize),
      sessions: pool,
      ...(handoff ? { connections: pool } : {}),
      environment: config.environment,
      logger,
      onRequestDone: (info) => metrics.requestDone(info),
      ...(statics ? { staticFiles: new StaticFiles(statics) } : {}),
      // Processes that serve a few requests at a time must not wait for a slow client's body.
      ...(config.requestBuffering && config.concurrency > 0
        ? { requestBuffering: { dir: config.dataBufferDir ?? tmpdir(), maxBodyBytes: config.maxRequestBodyBytes } }
        : {}),
      maxRequestQueueTimeMs: config.maxRequestQueueTimeMs,
      maxRequestTimeMs: config.maxRequestTimeMs,
      ...(config.readinessPath ? { readiness: { path: config.readinessPath, ready: () => pool.ready() } } : {}),
    });
    const appLogger = logger.child({ app: config.name });
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
      ...(config.healthCheckPath !== undefined ? { healthCheck: { path: config.healthCheckPath, timeoutMs: config.healthCheckTimeoutMs } } : {}),
      socketDir,
      watchdog,
      onOutput: (line, meta) => appLogger.info({ event: 'app_output', app_pid: meta.pid, stream: meta.stream }, line),
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
              staticFiles: statics && { module: require.resolve('./proxy/static-files'), ...statics },
              maxRequestBodyBytes: config.maxRequestBodyBytes,
              ...(config.dataBufferDir !== undefined ? { bufferDir: config.dataBufferDir } : {}),
            },
            onRequestStats: (stats) => metrics.handedOffRequests(stats),
          }
        : {}),
    });
    resources.defer('preloaders', () => spawner.close()); // once no process of theirs is left
    const group = new Group(groupOptions(config), {
      spawner,
      clock: systemClock,
      poolRoom: pool,
      observer: composeObservers(loggingObserver(appLogger), metrics.observe(config.name), upstreamCloser(proxy)),
    });
    pool.add(group);
    // Visitors' requests finish while their processes drain; both are bounded.
    resources.defer('proxy and app processes', (graceful) => Promise.all([proxy.close(graceful ? STOP_GRACE_MS : 0), pool.close()]));
    const bound = await proxy.listen(config.port, config.address);
    await instance.update({ port: bound.port });

    const stopWatching = watchRestartTxt(config.appDir, () => {
      logger.info({ event: 'restart_txt_touched', app: config.name }, 'tmp/restart.txt changed: restarting');
      void control.restart({}).done;
    });
    resources.defer('tmp/restart.txt watch', stopWatching);
    if (options.handleSignals) {
      // signals.ts: SIGTERM/SIGINT/SIGQUIT stop, SIGHUP restarts, SIGUSR1 reopens the log, the rest
      // are logged and ignored. They stay to the end: a second SIGTERM while draining must not kill holdfast.
      installSignalHandlers({
        logger,
        control,
        stop: close,
        reopen: () => {
          options.log.reopen();
          logger.info({ event: 'log_reopened' }, 'log file reopened');
        },
      });
    }

    await group.start();
    // A first start where no process could become ready fails here, with nothing left running.
    const failure = group.startFailure();
    if (failure) throw failure;
    logger.info(
      { event: 'serving', address: bound.address, port: bound.port, app_root: config.appDir, app_type: config.appType, app_type_reason: config.appTypeReason, environment: config.environment, version: VERSION },
      `holdfast ${VERSION} serving ${config.appDir} on http://${bound.address}:${bound.port}`,
    );
    options.onListening?.(bound);
    return { address: bound, control, closed, close };
  } catch (err) {
    await resources.unwind(false);
    throw err;
  }
}

function appSettings(config: HoldfastConfig): { appStartCommand?: string; startupFile?: string } {
  return {
    ...(config.appStartCommand !== undefined ? { appStartCommand: config.appStartCommand } : {}),
    ...(config.startupFile !== undefined ? { startupFile: config.startupFile } : {}),
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

export type { Instance };
