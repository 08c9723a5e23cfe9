// The four kinds of app holdfast runs, and how an app dir is told apart, as Passenger's
// AppTypeDetector does it: app_start_command makes a generic app; else app_type (with Passenger's
// spellings) names the type; else startup_file's extension; else the files in the app dir:
// config.ru -> Rack, passenger_wsgi.py -> WSGI, and a Node app otherwise (package.json main,
// app.js, index.js, server.js; spawn/ resolves the entry and says what it looked for).
// This is the one place that knows these rules; config/load.ts applies them once at start.

import { statSync } from 'node:fs';
import { extname, join } from 'node:path';

export const APP_TYPES = ['node', 'rack', 'wsgi', 'generic'] as const;
export type AppType = (typeof APP_TYPES)[number];

/** Passenger's spellings of app_type (its `app_type` option and PassengerAppType) and holdfast's own. */
export const APP_TYPE_ALIASES: Readonly<Record<string, AppType>> = {
  node: 'node',
  nodejs: 'node',
  rack: 'rack',
  ruby: 'rack',
  wsgi: 'wsgi',
  python: 'wsgi',
  generic: 'generic',
};

export const SPAWN_METHODS = ['smart', 'direct'] as const;
export type SpawnMethod = (typeof SPAWN_METHODS)[number];

/** The startup file Passenger looks for per type (Node's is resolved by spawn/, from package.json). */
export const DEFAULT_STARTUP_FILES: Readonly<Record<'rack' | 'wsgi', string>> = {
  rack: 'config.ru',
  wsgi: 'passenger_wsgi.py',
};

/** Which language a startup file is written in, by its extension; undefined = cannot tell. */
const EXTENSION_TYPES: Readonly<Record<string, AppType>> = {
  '.ru': 'rack',
  '.rb': 'rack',
  '.py': 'wsgi',
  '.js': 'node',
  '.mjs': 'node',
  '.cjs': 'node',
};

const INTERPRETERS: Readonly<Record<AppType, string>> = {
  node: 'node',
  rack: 'ruby',
  wsgi: 'python',
  generic: 'app_start_command',
};

/**
 * Sessions per process when `concurrency` is not set: Ruby and Python processes serve one request
 * at a time (Passenger's model); Node and generic apps are unlimited.
 */
export function defaultConcurrency(type: AppType): number {
  return type === 'rack' || type === 'wsgi' ? 1 : 0;
}

/** Smart spawning (a preloader per generation) is Passenger's default for Ruby, and Ruby only. */
export function usesPreloader(type: AppType, method: SpawnMethod): boolean {
  return type === 'rack' && method === 'smart';
}

export interface AppTypeInput {
  /** Absolute app dir (a release dir, or a symlink to one). */
  appDir: string;
  /** A value of APP_TYPE_ALIASES' keys, already validated. */
  appType?: string | undefined;
  startupFile?: string | undefined;
  appStartCommand?: string | undefined;
}

export interface DetectedAppType {
  type: AppType;
  /** Why: for the start-up log line ("config.ru found", "app_type", ...). */
  reason: string;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The type a startup file's extension says, if it says one. */
export function startupFileType(startupFile: string): AppType | undefined {
  return EXTENSION_TYPES[extname(startupFile).toLowerCase()];
}

/** Normalises app_type (any accepted spelling) to an AppType; undefined when it is not one. */
export function parseAppType(value: string): AppType | undefined {
  return Object.hasOwn(APP_TYPE_ALIASES, value) ? APP_TYPE_ALIASES[value] : undefined;
}

export function detectAppType(input: AppTypeInput): DetectedAppType {
  if (input.appStartCommand !== undefined) return { type: 'generic', reason: 'app_start_command' };
  const named = input.appType === undefined ? undefined : parseAppType(input.appType);
  if (named) return { type: named, reason: 'app_type' };
  if (input.startupFile !== undefined) {
    const byFile = startupFileType(input.startupFile);
    if (byFile) return { type: byFile, reason: `startup_file ${input.startupFile}` };
  }
  if (isFile(join(input.appDir, DEFAULT_STARTUP_FILES.rack))) return { type: 'rack', reason: 'config.ru found' };
  if (isFile(join(input.appDir, DEFAULT_STARTUP_FILES.wsgi))) return { type: 'wsgi', reason: 'passenger_wsgi.py found' };
  return { type: 'node', reason: 'no config.ru or passenger_wsgi.py' };
}

/**
 * Why startup_file cannot be run as the given type (a Rack file under node, a .js under ruby), as
 * one line with a hint; undefined when it fits or its extension says nothing.
 */
export function startupFileMismatch(type: AppType, startupFile: string): string | undefined {
  const byFile = startupFileType(startupFile);
  if (byFile === undefined || byFile === type || type === 'generic') return undefined;
  return (
    `startup_file ${JSON.stringify(startupFile)} is a ${label(byFile)} file, but the app type is ${JSON.stringify(type)} ` +
    `(it would be run by ${INTERPRETERS[type]}): set app_type ${JSON.stringify(byFile)}, or a ${label(type)} startup_file`
  );
}

function label(type: AppType): string {
  return { node: 'Node', rack: 'Rack (Ruby)', wsgi: 'WSGI (Python)', generic: 'generic' }[type];
}
