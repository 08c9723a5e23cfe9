// The Spawner core uses, with real OS processes. What runs depends on the app type (launchers.ts):
// a Node app runs as `node --require node-hook.js <entry>` and listens on a Unix socket the hook
// gives it; a Rack app runs holdfast's Rack loader, forked from a preloader per generation (smart
// spawning, preloader.ts) or started from scratch (direct); a generic app runs as
// `/bin/sh -c <app_start_command>` and listens on $PORT of 127.0.0.1.

import { checkHealth, type HealthCheck } from './health-check';
import { randomBytes } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HoldfastError, SpawnError, newErrorId } from '../errors';
import type { ProcessHandle } from '../core/process-handle';
import type { SpawnRequest, Spawner, SpawnerSnapshot } from '../core/spawner';
import { readGitCommit } from './git-commit';
import type { RequestStatsListener } from './hook-channel';
import { LAUNCHERS, LOADER_ENV, type LaunchAppType, type LauncherSettings, type Recipe } from './launchers';
import type { HandoffSettings } from './node-hook';
import { Preloader, type PreloaderInfo } from './preloader';
import { abortError, launch, type LaunchOptions, type LaunchPlan } from './spawned-process';
import { pickFreePort } from './tcp';
import type { Watchdog } from './watchdog';

export interface ChildSpawnerOptions {
  /** Absolute; may be a symlink (`current -> releases/X`) a deploy tool switches between spawns. */
  appDir: string;
  /** Default: 'generic' with appStartCommand, else 'node'. */
  appType?: LaunchAppType;
  /** Set for a generic (non-Node) app, which must listen on $PORT. */
  appStartCommand?: string;
  /** The app's startup file (Node entry, rackup file), relative to the app dir. */
  startupFile?: string;
  /** Interpreters of Rack and WSGI apps. Default: ruby, python3. */
  ruby?: string;
  python?: string;
  /** 'smart' (default): Rack apps are forked from a preloader per generation; 'direct': each from scratch. */
  spawnMethod?: 'smart' | 'direct';
  /** NODE_ENV (and RAILS_ENV, RACK_ENV) unless envvars sets them. */
  environment: string;
  envvars: Record<string, string>;
  startTimeoutMs: number;
  /** health_check_path: every new process must answer it with 2xx before it is ready. */
  healthCheck?: HealthCheck;
  /** A 0700 dir the caller created; Node apps' sockets are made here. */
  socketDir: string;
  watchdog: Watchdog;
  onOutput?(line: string, meta: { pid: number; stream: 'stdout' | 'stderr' }): void;
  /** Set to let Node apps take whole visitor connections (the hand-off path); the hook reads it. */
  handoff?: HandoffSettings;
  /** Request counts from the hand-off path, for metrics. */
  onRequestStats?: RequestStatsListener;
  /** Smart spawning: a preloader has loaded the app ('ready') or is gone ('stopped'), for the log. */
  onPreloader?(event: 'ready' | 'stopped', info: PreloaderInfo): void;
}

/** sun_path holds 108 bytes on Linux (104 on BSDs); stay clearly below. */
const MAX_SOCKET_PATH_BYTES = 100;
const SOCKET_NAME_BYTES = 'ffffffff.sock'.length + 1;

// Inherited from holdfast's own environment, these would make the app's node misread fd 3
// (an IPC channel of holdfast's parent) or believe it is a cluster worker, or a loader take a
// socket or mode meant for another process.
const NOT_INHERITED = ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE', 'NODE_UNIQUE_ID', ...Object.values(LOADER_ENV)];

/** A process that failed its health check gets this long between SIGTERM and SIGKILL. */
const HEALTH_CHECK_KILL_GRACE_MS = 2000;

/** One generation's (and release's) preloader, booting or running. */
interface PreloaderEntry {
  pending: Promise<Preloader>;
  running?: Preloader;
  /** Kills the preloader while it boots. */
  boot: AbortController;
  /** Spawns waiting for it to boot. */
  waiting: number;
}

export class ChildSpawner implements Spawner {
  private readonly options: ChildSpawnerOptions;
  private readonly type: LaunchAppType;
  private readonly settings: LauncherSettings;
  /** Smart spawning: one preloader (being started, or running) per generation and release. */
  private readonly preloaders = new Map<string, PreloaderEntry>();
  /** The newest generation a spawn was asked for: older preloaders go once their processes have. */
  private newestGeneration = 0;
  private closed = false;

  constructor(options: ChildSpawnerOptions) {
    this.type = options.appType ?? (options.appStartCommand !== undefined ? 'generic' : 'node');
    const socketBytes = Buffer.byteLength(options.socketDir) + SOCKET_NAME_BYTES;
    if (this.type !== 'generic' && socketBytes > MAX_SOCKET_PATH_BYTES) {
      throw new HoldfastError(
        'HF_INTERNAL',
        `socket dir ${options.socketDir} is too long for Unix socket paths (${socketBytes} of at most ${MAX_SOCKET_PATH_BYTES} bytes)`,
      );
    }
    this.options = { ...options, envvars: { ...options.envvars } };
    this.settings = {
      ...(options.appStartCommand !== undefined ? { appStartCommand: options.appStartCommand } : {}),
      ...(options.startupFile !== undefined ? { startupFile: options.startupFile } : {}),
      ruby: options.ruby ?? 'ruby',
      python: options.python ?? 'python3',
      ...(options.handoff ? { handoff: JSON.stringify(options.handoff) } : {}),
    };
  }

  get appType(): LaunchAppType {
    return this.type;
  }

  /** Whether processes are forked from a preloader (smart spawning of a Rack app). */
  get smart(): boolean {
    return this.type === 'rack' && this.options.spawnMethod !== 'direct';
  }

  describeCommand(): string {
    try {
      return this.recipe(this.options.appDir, 0, join(this.options.socketDir, 'x.sock')).description;
    } catch {
      const file = this.options.startupFile;
      if (this.type === 'rack') return `${this.settings.ruby} ${join(this.options.appDir, file ?? 'config.ru')}`;
      if (this.type === 'wsgi') return `${this.settings.python} ${join(this.options.appDir, file ?? 'passenger_wsgi.py')}`;
      return `node ${join(this.options.appDir, file ?? '(package.json main | app.js | index.js | server.js)')}`;
    }
  }

  inspect(): SpawnerSnapshot {
    return { app_type: this.type, spawn_method: this.smart ? 'smart' : 'direct', ...(this.smart ? { preloaders: this.preloaderInfo() } : {}) };
  }

  /** The preloaders that run now (smart spawning), for status and metrics. */
  preloaderInfo(): PreloaderInfo[] {
    const infos: PreloaderInfo[] = [];
    for (const { running } of this.preloaders.values()) if (running?.alive) infos.push(running.info());
    return infos;
  }

  /** Stops the preloaders; the processes are the pool's to stop. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.preloaders.values()];
    this.preloaders.clear();
    // A preloader still booting (one that hangs waits out start_timeout) is killed, not awaited.
    for (const entry of all) entry.boot.abort();
    await Promise.all(all.map((e) => e.pending.then((preloader) => preloader.close(), () => undefined)));
  }

  async spawn(request: SpawnRequest): Promise<ProcessHandle> {
    if (request.signal.aborted) throw abortError(request.signal);
    const release = await this.resolveRelease(request);
    const commit = await readGitCommit(release);
    let handle: ProcessHandle;
    if (this.smart) handle = await this.forkFromPreloader(request, release, commit);
    else {
      const plan = await this.plan(release, commit, request.generation);
      if (request.signal.aborted) throw abortError(request.signal);
      handle = await launch(plan, this.launchOptions(request.signal));
    }
    return this.healthChecked(handle, request, release);
  }

  /** health_check_path: the new process must answer 2xx before it is ready; else it is stopped and the spawn fails. */
  private async healthChecked(handle: ProcessHandle, request: SpawnRequest, release: string): Promise<ProcessHandle> {
    const check = this.options.healthCheck;
    if (!check) return handle;
    const failure = await checkHealth(handle.target, check, request.signal);
    if (failure === undefined) return handle;
    const exit = await handle.terminate(HEALTH_CHECK_KILL_GRACE_MS);
    if (request.signal.aborted) throw abortError(request.signal);
    throw new SpawnError(`app process ${handle.pid} ${failure}: health_check_path must answer 2xx before it may serve`, {
      category: 'health_check',
      errorId: newErrorId(),
      command: this.describeCommand(),
      exitCode: exit.code,
      signal: exit.signal,
      outputTail: handle.recentOutput?.() ?? [],
      release,
      generation: request.generation,
      at: Date.now(),
    });
  }

  private launchOptions(signal: AbortSignal): LaunchOptions {
    return {
      startTimeoutMs: this.options.startTimeoutMs,
      watchdog: this.options.watchdog,
      signal,
      ...(this.options.onOutput ? { onOutput: this.options.onOutput } : {}),
      ...(this.options.onRequestStats ? { onRequestStats: this.options.onRequestStats } : {}),
    };
  }

  private async forkFromPreloader(request: SpawnRequest, release: string, commit: string | undefined): Promise<ProcessHandle> {
    if (this.closed) throw abortError(request.signal);
    if (request.generation > this.newestGeneration) {
      this.newestGeneration = request.generation;
      this.retireIdlePreloaders();
    }
    const key = `${request.generation}\0${release}`;
    let entry = this.preloaders.get(key);
    if (entry === undefined) {
      const boot = new AbortController();
      const created: PreloaderEntry = { pending: this.startPreloader(release, commit, request.generation, boot.signal), boot, waiting: 0 };
      entry = created;
      this.preloaders.set(key, created);
      const forget = () => {
        if (this.preloaders.get(key) === created) this.preloaders.delete(key);
      };
      // A preloader that could not load the app is a spawn error now; the next spawn tries afresh.
      created.pending.then(
        (preloader) => {
          created.running = preloader;
          this.options.onPreloader?.('ready', preloader.info());
          if (this.closed) void preloader.close();
          // Its generation may have been superseded while it booted: once the spawns that awaited it
          // have asked for their fork (microtasks), one nobody needs goes.
          setImmediate(() => this.retireIdlePreloaders());
          void preloader.gone.then(() => {
            forget();
            this.options.onPreloader?.('stopped', preloader.info());
          });
        },
        forget,
      );
    }
    // The preloader is shared by every spawn of its generation: one spawn's abort must not kill it,
    // but a boot that no spawn waits for any more (a superseded restart) is stopped.
    const booting = entry;
    booting.waiting++;
    let preloader: Preloader;
    try {
      preloader = await raceAbort(booting.pending, request.signal);
    } finally {
      booting.waiting--;
      if (booting.waiting === 0 && booting.running === undefined && request.signal.aborted) {
        booting.boot.abort();
        if (this.preloaders.get(key) === booting) this.preloaders.delete(key);
      }
    }
    return preloader.fork(request.signal);
  }

  private async startPreloader(release: string, commit: string | undefined, generation: number, signal: AbortSignal): Promise<Preloader> {
    const plan = await this.plan(release, commit, generation);
    plan.env[LOADER_ENV.preloader] = '1';
    plan.description = `${plan.description} (preloader)`;
    if (plan.serialHandoff === true) {
      // The hand-off path: the preloader relays the channel to the processes it forks, and says it
      // has loaded the app by listening on its control socket, as without.
      plan.readiness = 'socket';
      plan.ipc = true;
    }
    // The preloader outlives any one spawn: only closing the spawner, or every spawn that waited for
    // its boot giving up, stops it.
    return Preloader.start(plan, this.launchOptions(signal), this.options.socketDir, () => this.retireIdlePreloaders());
  }

  /** Stops every preloader of an older generation that has no process left. */
  private retireIdlePreloaders(): void {
    for (const [key, { running: preloader }] of this.preloaders) {
      if (preloader && preloader.generation < this.newestGeneration && preloader.processCount === 0) {
        this.preloaders.delete(key);
        void preloader.close();
      }
    }
  }

  /** The release to start from, resolved now: a deploy may have switched the symlink since the last spawn. */
  private async resolveRelease(request: SpawnRequest): Promise<string> {
    const dir = request.release ?? this.options.appDir;
    try {
      const release = request.release ?? (await realpath(dir));
      if (!(await stat(release)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      return release;
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code ?? 'unusable';
      throw this.planError(`app dir ${dir} cannot be used (${code})`, dir, request.generation, cause);
    }
  }

  private recipe(release: string, port: number, socketPath: string): Recipe {
    return LAUNCHERS[this.type]({ release, port, socketPath, settings: this.settings });
  }

  private async plan(release: string, commit: string | undefined, generation: number): Promise<LaunchPlan> {
    const port = await pickFreePort();
    const socketPath = join(this.options.socketDir, `${randomBytes(4).toString('hex')}.sock`);
    let recipe: Recipe;
    try {
      recipe = this.recipe(release, port, socketPath);
    } catch (cause) {
      throw this.planError((cause as Error).message, release, generation, cause);
    }
    // PORT is informational for apps on a Unix socket, but free, so an app that uses it for
    // something else does not collide with another.
    const { env, ...rest } = recipe;
    return { ...rest, cwd: release, release, commit, generation, env: this.environmentFor(port, env) };
  }

  private environmentFor(port: number, extra: Record<string, string>): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of NOT_INHERITED) delete env[name];
    const { environment } = this.options;
    Object.assign(env, { NODE_ENV: environment, RAILS_ENV: environment, RACK_ENV: environment });
    Object.assign(env, this.options.envvars);
    env.PORT = String(port);
    Object.assign(env, extra);
    return env;
  }

  private planError(message: string, release: string, generation: number, cause: unknown): SpawnError {
    return new SpawnError(
      message,
      {
        category: 'os',
        errorId: newErrorId(),
        command: this.describeCommand(),
        exitCode: null,
        signal: null,
        outputTail: [],
        release,
        generation,
        at: Date.now(),
      },
      { cause },
    );
  }
}

/** Waits for promise, or rejects with an AbortError when signal fires first (promise goes on). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
