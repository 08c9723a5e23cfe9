// The Spawner core uses, with real OS processes. A Node app runs as
// `node --require node-hook.js <entry>` and listens on a Unix socket the hook gives it; a WSGI app
// runs as `python wsgi_loader.py passenger_wsgi.py` (wsgi-app.ts) on such a socket; a generic
// app runs as `/bin/sh -c <app_start_command>` and listens on $PORT of 127.0.0.1.

import { checkHealth, type HealthCheck } from './health-check';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HoldfastError, SpawnError, newErrorId } from '../errors';
import type { ProcessHandle, UpstreamTarget } from '../core/process-handle';
import type { SpawnRequest, Spawner } from '../core/spawner';
import { readGitCommit } from './git-commit';
import type { RequestStatsListener } from './hook-channel';
import type { HandoffSettings } from './node-hook';
import { abortError, launch, type LaunchPlan } from './spawned-process';
import { pickFreePort } from './tcp';
import type { Watchdog } from './watchdog';
import { describeWsgiCommand, resolveWsgiStartupFile, wsgiLaunch } from './wsgi-app';

export interface ChildSpawnerOptions {
  /** Absolute; may be a symlink (`current -> releases/X`) a deploy tool switches between spawns. */
  appDir: string;
  /** Set for a generic (non-Node) app, which must listen on $PORT. */
  appStartCommand?: string;
  /** A Node app's entry (or a WSGI app's startup file), relative to the app dir. */
  startupFile?: string;
  /** 'wsgi': a Python app started through holdfast's WSGI loader (wsgi-app.ts); default 'node'. */
  appType?: 'node' | 'wsgi';
  /** The interpreter of a WSGI app. */
  python?: string;
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
}

/** A process that failed its health check gets this long between SIGTERM and SIGKILL. */
const HEALTH_CHECK_KILL_GRACE_MS = 2000;

/** Read by node-hook.ts, which may import nothing of holdfast and so spells them itself. */
export const HOOK_ENV = { socket: 'HOLDFAST_APP_SOCKET', handoff: 'HOLDFAST_HANDOFF' } as const;

/** Compiled next to this file. */
export const NODE_HOOK_PATH = join(__dirname, 'node-hook.js');

/** sun_path holds 108 bytes on Linux (104 on BSDs); stay clearly below. */
const MAX_SOCKET_PATH_BYTES = 100;
const SOCKET_NAME_BYTES = 'ffffffff.sock'.length + 1;

const DEFAULT_ENTRIES = ['app.js', 'index.js', 'server.js'];

// Inherited from holdfast's own environment, these would make the app's node misread fd 3
// (an IPC channel of holdfast's parent) or believe it is a cluster worker.
const NOT_INHERITED = ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE', 'NODE_UNIQUE_ID', HOOK_ENV.socket, HOOK_ENV.handoff];

function isReadableFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function packageMain(appDir: string): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8')) as { main?: unknown };
    return typeof pkg.main === 'string' && pkg.main.trim() !== '' ? pkg.main : undefined;
  } catch {
    return undefined; // no package.json, or one node will complain about itself
  }
}

function checkReadable(entry: string, appDir: string): string {
  try {
    accessSync(entry, constants.R_OK);
  } catch (cause) {
    throw new HoldfastError('HF_APP_DIR', `startup file ${entry} in ${appDir} is not readable`, { cause });
  }
  return entry;
}

/**
 * The absolute path of a Node app's entry: startupFile if given, else package.json "main" when
 * that file exists, else the first of app.js, index.js, server.js. Throws HoldfastError HF_APP_DIR
 * with one line naming the dir and what was looked for.
 */
export function resolveNodeEntry(appDir: string, startupFile?: string): string {
  let isDir: boolean;
  try {
    isDir = statSync(appDir).isDirectory();
  } catch (cause) {
    throw new HoldfastError('HF_APP_DIR', `app dir ${appDir} does not exist`, { cause });
  }
  if (!isDir) throw new HoldfastError('HF_APP_DIR', `app dir ${appDir} is not a directory`);
  if (startupFile !== undefined && startupFile !== '') {
    const entry = resolve(appDir, startupFile);
    if (!isReadableFile(entry)) {
      throw new HoldfastError('HF_APP_DIR', `startup file ${startupFile} not found in app dir ${appDir}`);
    }
    return checkReadable(entry, appDir);
  }
  const main = packageMain(appDir);
  // "main" as node resolves it, roughly; npm init writes "index.js" whether or not it exists,
  // so a missing main falls through to the usual names instead of failing.
  const candidates = main === undefined ? [] : ['', '.js', '.cjs', '.mjs', '/index.js'].map((ext) => resolve(appDir, main + ext));
  for (const entry of [...candidates, ...DEFAULT_ENTRIES.map((name) => join(appDir, name))]) {
    if (isReadableFile(entry)) return checkReadable(entry, appDir);
  }
  const lookedFor = [...(main === undefined ? [] : [`package.json "main" (${main})`]), ...DEFAULT_ENTRIES].join(', ');
  throw new HoldfastError(
    'HF_APP_DIR',
    `no Node app entry in ${appDir}: looked for ${lookedFor}; set startup_file, or app_start_command for a non-Node app`,
  );
}

export class ChildSpawner implements Spawner {
  private readonly options: ChildSpawnerOptions;

  constructor(options: ChildSpawnerOptions) {
    const socketBytes = Buffer.byteLength(options.socketDir) + SOCKET_NAME_BYTES;
    if (options.appStartCommand === undefined && socketBytes > MAX_SOCKET_PATH_BYTES) {
      throw new HoldfastError(
        'HF_INTERNAL',
        `socket dir ${options.socketDir} is too long for Unix socket paths (${socketBytes} of at most ${MAX_SOCKET_PATH_BYTES} bytes)`,
      );
    }
    this.options = { ...options, envvars: { ...options.envvars } };
  }

  describeCommand(): string {
    const { appStartCommand, appDir, startupFile } = this.options;
    if (appStartCommand !== undefined) return appStartCommand;
    if (this.options.appType === 'wsgi') {
      const python = this.options.python ?? 'python3';
      try {
        return describeWsgiCommand(python, resolveWsgiStartupFile(appDir, startupFile));
      } catch {
        return describeWsgiCommand(python, join(appDir, startupFile ?? 'passenger_wsgi.py'));
      }
    }
    try {
      return `node ${resolveNodeEntry(appDir, startupFile)}`;
    } catch {
      return `node ${join(appDir, startupFile ?? '(package.json main | app.js | index.js | server.js)')}`;
    }
  }

  async spawn(request: SpawnRequest): Promise<ProcessHandle> {
    if (request.signal.aborted) throw abortError(request.signal);
    const release = await this.resolveRelease(request);
    const commit = await readGitCommit(release);
    const plan = await this.plan(release, commit, request.generation);
    if (request.signal.aborted) throw abortError(request.signal);
    const handle = await launch(plan, {
      startTimeoutMs: this.options.startTimeoutMs,
      watchdog: this.options.watchdog,
      signal: request.signal,
      ...(this.options.onOutput ? { onOutput: this.options.onOutput } : {}),
      ...(this.options.onRequestStats ? { onRequestStats: this.options.onRequestStats } : {}),
    });
    const check = this.options.healthCheck;
    if (!check) return handle;
    const failure = await checkHealth(handle.target, check, request.signal);
    if (failure === undefined) return handle;
    const exit = await handle.terminate(HEALTH_CHECK_KILL_GRACE_MS);
    if (request.signal.aborted) throw abortError(request.signal);
    throw new SpawnError(`app process ${handle.pid} ${failure}: health_check_path must answer 2xx before it may serve`, {
      category: 'health_check',
      errorId: newErrorId(),
      command: plan.description,
      exitCode: exit.code,
      signal: exit.signal,
      outputTail: handle.recentOutput?.() ?? [],
      release,
      generation: request.generation,
      at: Date.now(),
    });
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

  private async plan(release: string, commit: string | undefined, generation: number): Promise<LaunchPlan> {
    const { appStartCommand } = this.options;
    const port = await pickFreePort();
    const common = { cwd: release, release, commit, generation };
    if (appStartCommand !== undefined) {
      const target: UpstreamTarget = { kind: 'tcp', host: '127.0.0.1', port };
      return {
        ...common,
        command: '/bin/sh',
        args: ['-c', appStartCommand],
        env: this.environmentFor(port, {}),
        description: appStartCommand,
        target,
        readiness: 'tcp',
        viaShell: true,
      };
    }
    if (this.options.appType === 'wsgi') return this.wsgiPlan(release, common, port);
    let entry: string;
    try {
      entry = resolveNodeEntry(release, this.options.startupFile);
    } catch (cause) {
      throw this.planError((cause as Error).message, release, generation, cause);
    }
    const socketPath = join(this.options.socketDir, `${randomBytes(4).toString('hex')}.sock`);
    return {
      ...common,
      command: process.execPath,
      args: ['--require', NODE_HOOK_PATH, entry],
      // PORT is informational for Node apps (the hook redirects listen()), but free, so an app
      // that uses it for something else does not collide with another.
      env: this.environmentFor(port, {
        [HOOK_ENV.socket]: socketPath,
        ...(this.options.handoff ? { [HOOK_ENV.handoff]: JSON.stringify(this.options.handoff) } : {}),
      }),
      description: `node ${entry}`,
      target: { kind: 'unix', socketPath },
      readiness: 'hook',
      viaShell: false,
    };
  }

  private wsgiPlan(release: string, common: Pick<LaunchPlan, 'cwd' | 'release' | 'commit' | 'generation'>, port: number): LaunchPlan {
    const socketPath = join(this.options.socketDir, `${randomBytes(4).toString('hex')}.sock`);
    let launch;
    try {
      launch = wsgiLaunch({
        appDir: release,
        startupFile: this.options.startupFile,
        python: this.options.python ?? 'python3',
        env: this.environmentFor(port, {}),
        socketPath,
      });
    } catch (cause) {
      throw this.planError((cause as Error).message, release, common.generation, cause);
    }
    const { command, args, env, description } = launch;
    return { ...common, command, args, env, description, target: { kind: 'unix', socketPath }, readiness: 'socket', viaShell: false };
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
