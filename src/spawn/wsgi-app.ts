// How a WSGI (Python) app process is started: `PYTHON wsgi_loader.py STARTUP_FILE` in the release
// dir, serving HTTP/1.1 on a private Unix socket the loader creates once the app is imported
// (loaders/wsgi/wsgi_loader.py says how). Self-contained, so the spawner only asks it for a command.

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { HoldfastError } from '../errors';

/** What Passenger looks for in a Python app's dir, and the default startup_file of a WSGI app. */
export const WSGI_STARTUP_FILE = 'passenger_wsgi.py';

/** Environment variable carrying the socket path to the loader, which removes it before the app loads. */
export const WSGI_SOCKET_ENV = 'HOLDFAST_APP_SOCKET';

/**
 * The loader ships as source (package.json "files" lists src/spawn/loaders): from dist/src/spawn,
 * up to the package root, then into src/.
 */
export const WSGI_LOADER_PATH = resolve(__dirname, '..', '..', '..', 'src', 'spawn', 'loaders', 'wsgi', 'wsgi_loader.py');

export interface WsgiAppInput {
  /** The resolved release dir; the process runs there and it comes first on sys.path. */
  appDir: string;
  /** Relative to appDir; default passenger_wsgi.py. */
  startupFile?: string | undefined;
  /** The interpreter: a path (a virtualenv's bin/python) or a name looked up in PATH. */
  python: string;
  /** The environment holdfast gives every app process (envvars, PORT, ...). */
  env: NodeJS.ProcessEnv;
  /** Where the loader is to listen. */
  socketPath: string;
}

export interface WsgiLaunch {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Shown in errors and status. */
  description: string;
}

/**
 * The absolute path of a WSGI app's startup file. Throws HoldfastError HF_APP_DIR with one line
 * naming the file and the dir when it is not there.
 */
export function resolveWsgiStartupFile(appDir: string, startupFile?: string): string {
  const file = resolve(appDir, startupFile ?? WSGI_STARTUP_FILE);
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    // reported below
  }
  if (!isFile) {
    throw new HoldfastError(
      'HF_APP_DIR',
      `no WSGI startup file ${startupFile ?? WSGI_STARTUP_FILE} in ${appDir}: a WSGI app needs a Python file exposing \`application\``,
    );
  }
  return file;
}

export function wsgiLaunch(input: WsgiAppInput): WsgiLaunch {
  const startupFile = resolveWsgiStartupFile(input.appDir, input.startupFile);
  return {
    command: input.python,
    args: [WSGI_LOADER_PATH, startupFile],
    env: {
      ...input.env,
      // Piped stdout is block-buffered by default: the app's print() lines would reach the log late, or never.
      PYTHONUNBUFFERED: '1',
      [WSGI_SOCKET_ENV]: input.socketPath,
    },
    description: describeWsgiCommand(input.python, startupFile),
  };
}

export function describeWsgiCommand(python: string, startupFile: string): string {
  return `${python} wsgi_loader.py ${startupFile}`;
}
