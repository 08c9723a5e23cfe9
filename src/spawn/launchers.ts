// How one process of each app type is started: the command, its arguments, the environment it
// needs beyond the common one, where it listens and how holdfast knows it is ready. One function
// per type; ChildSpawner adds what every process gets (cwd, NODE_ENV / RACK_ENV / RAILS_ENV,
// envvars, PORT) and runs it. A new app type is one more entry in LAUNCHERS.

import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HoldfastError } from '../errors';
import type { UpstreamTarget } from '../core/process-handle';
import { wsgiLaunch } from './wsgi-app';
import type { LaunchPlan } from './spawned-process';

/** The app types of config/app-type.ts (spawn/ may not import config/; the supervisor's call checks they agree). */
export type LaunchAppType = 'node' | 'rack' | 'wsgi' | 'generic';

/** Read by the loaders (node-hook.ts and loaders/), which import nothing of holdfast and so spell them themselves. */
export const LOADER_ENV = {
  socket: 'HOLDFAST_APP_SOCKET',
  handoff: 'HOLDFAST_HANDOFF',
  rackup: 'HOLDFAST_RACKUP',
  preloader: 'HOLDFAST_PRELOADER',
} as const;

/** Compiled next to this file. */
export const NODE_HOOK_PATH = join(__dirname, 'node-hook.js');
/** Shipped as source (package.json "files"): from dist/src/spawn/ up to the package root. */
export const RACK_LOADER_PATH = resolve(__dirname, '../../../src/spawn/loaders/rack/loader.rb');

/** The Rack loader's line for a boot error (loader.rb BOOT_ERROR_MARKER). */
export const RACK_BOOT_ERROR_MARKER = 'holdfast-rack: boot error: ';

export interface LauncherSettings {
  appStartCommand?: string;
  startupFile?: string;
  ruby: string;
  python: string;
  /** JSON for the hand-off path of the Node hook and the Rack loader; undefined = off. */
  handoff?: string;
}

export interface LaunchContext {
  /** The resolved release dir the process starts from. */
  release: string;
  /** A free loopback port: $PORT for generic apps, informational for the others. */
  port: number;
  /** A fresh private socket path for apps that listen on a Unix socket. */
  socketPath: string;
  settings: LauncherSettings;
}

/** The type-specific part of a LaunchPlan. */
export type Recipe = Pick<LaunchPlan, 'command' | 'args' | 'description' | 'target' | 'readiness' | 'viaShell' | 'bootErrorMarker' | 'serialHandoff'> & {
  env: Record<string, string>;
};

export type Launcher = (context: LaunchContext) => Recipe;

const DEFAULT_ENTRIES = ['app.js', 'index.js', 'server.js'];

function isReadableFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
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

function checkAppDir(appDir: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(appDir).isDirectory();
  } catch (cause) {
    throw new HoldfastError('HF_APP_DIR', `app dir ${appDir} does not exist`, { cause });
  }
  if (!isDir) throw new HoldfastError('HF_APP_DIR', `app dir ${appDir} is not a directory`);
}

function packageMain(appDir: string): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8')) as { main?: unknown };
    return typeof pkg.main === 'string' && pkg.main.trim() !== '' ? pkg.main : undefined;
  } catch {
    return undefined; // no package.json, or one node will complain about itself
  }
}

/** startupFile in appDir, or the type's own file: an HF_APP_DIR error naming what is missing. */
function resolveStartupFile(appDir: string, startupFile: string | undefined, fallback: string, what: string): string {
  checkAppDir(appDir);
  const name = startupFile !== undefined && startupFile !== '' ? startupFile : fallback;
  const entry = resolve(appDir, name);
  if (!isReadableFile(entry)) {
    throw new HoldfastError(
      'HF_APP_DIR',
      startupFile ? `startup file ${startupFile} not found in app dir ${appDir}` : `no ${what} in ${appDir}: looked for ${fallback}; set startup_file`,
    );
  }
  return checkReadable(entry, appDir);
}

/**
 * The absolute path of a Node app's entry: startupFile if given, else package.json "main" when
 * that file exists, else the first of app.js, index.js, server.js. Throws HoldfastError HF_APP_DIR
 * with one line naming the dir and what was looked for.
 */
export function resolveNodeEntry(appDir: string, startupFile?: string): string {
  checkAppDir(appDir);
  if (startupFile !== undefined && startupFile !== '') return resolveStartupFile(appDir, startupFile, startupFile, 'Node app entry');
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
    `no Node app entry in ${appDir}: looked for ${lookedFor} (and config.ru, passenger_wsgi.py for Rack and WSGI apps); set startup_file, or app_start_command for an app of another kind`,
  );
}

/** A Rack app's rackup file: startupFile, else config.ru. */
export function resolveRackup(appDir: string, startupFile?: string): string {
  return resolveStartupFile(appDir, startupFile, 'config.ru', 'Rack app (config.ru)');
}

const node: Launcher = ({ release, socketPath, settings }) => {
  const entry = resolveNodeEntry(release, settings.startupFile);
  return {
    command: process.execPath,
    args: ['--require', NODE_HOOK_PATH, entry],
    env: { [LOADER_ENV.socket]: socketPath, ...(settings.handoff !== undefined ? { [LOADER_ENV.handoff]: settings.handoff } : {}) },
    description: `node ${entry}`,
    target: { kind: 'unix', socketPath },
    readiness: 'hook',
    viaShell: false,
  };
};

/**
 * Direct spawning of a Rack app: the loader boots config.ru and listens once the app is loaded. On
 * the hand-off path it also takes visitor connections over the IPC channel and says when it is
 * ready there, as the Node hook does.
 */
const rack: Launcher = ({ release, socketPath, settings }) => {
  const rackup = resolveRackup(release, settings.startupFile);
  const handoff = settings.handoff !== undefined;
  return {
    command: settings.ruby,
    args: [RACK_LOADER_PATH],
    env: { [LOADER_ENV.socket]: socketPath, [LOADER_ENV.rackup]: rackup, ...(handoff ? { [LOADER_ENV.handoff]: settings.handoff } : {}) },
    description: `${settings.ruby} ${rackup}`,
    target: { kind: 'unix', socketPath },
    readiness: handoff ? 'hook' : 'socket',
    viaShell: false,
    bootErrorMarker: RACK_BOOT_ERROR_MARKER,
    ...(handoff ? { serialHandoff: true } : {}),
  };
};

/** A WSGI app: the Python loader imports the startup file and listens once the app is imported. */
const wsgi: Launcher = ({ release, socketPath, settings }) => {
  const launch = wsgiLaunch({ appDir: release, startupFile: settings.startupFile, python: settings.python, env: {}, socketPath });
  return {
    command: launch.command,
    args: launch.args,
    env: launch.env as Record<string, string>,
    description: launch.description,
    target: { kind: 'unix', socketPath },
    readiness: 'socket',
    viaShell: false,
  };
};

const generic: Launcher = ({ port, settings }) => {
  const command = settings.appStartCommand ?? '';
  const target: UpstreamTarget = { kind: 'tcp', host: '127.0.0.1', port };
  return { command: '/bin/sh', args: ['-c', command], env: {}, description: command, target, readiness: 'tcp', viaShell: true };
};

export const LAUNCHERS: Readonly<Record<LaunchAppType, Launcher>> = { node, rack, wsgi, generic };

/**
 * The same checks a spawn makes, done once at start so that an app that cannot be found fails with
 * one line before anything runs. Throws HoldfastError HF_APP_DIR.
 */
export function checkLaunchable(type: LaunchAppType, appDir: string, settings: LauncherSettings): void {
  if (type === 'generic') return;
  LAUNCHERS[type]({ release: appDir, port: 0, socketPath: join(appDir, 'x.sock'), settings });
}
