// Which kind of app a dir holds, decided as Passenger's AppTypeDetector does: app_type when given,
// else app_start_command (generic), else the startup file or the dir's files (passenger_wsgi.py:
// WSGI), else Node. A startup_file that does not fit the type is refused with a hint.

import { existsSync } from 'node:fs';
import { join } from 'node:path';

export type AppType = 'node' | 'wsgi' | 'generic';

/** The file Passenger looks for to call a dir a WSGI app (and its default startup file). */
export const WSGI_MARKER = 'passenger_wsgi.py';

export interface AppTypeInput {
  appDir: string;
  /** app_type as configured, if it was. */
  appType: AppType | undefined;
  startupFile: string | undefined;
  appStartCommand: string | undefined;
  /** How to name a key in a problem: `app_type (from /app/holdfast.json)`. */
  describe(key: string): string;
}

export interface AppTypeDecision {
  appType: AppType;
  /** Set when the settings contradict each other; nothing may start. */
  problem?: string;
}

const isPython = (file: string): boolean => file.endsWith('.py');

export function decideAppType(input: AppTypeInput): AppTypeDecision {
  const { appDir, appType, startupFile, appStartCommand, describe } = input;
  if (appStartCommand !== undefined) {
    // app_type "node" next to app_start_command was always accepted (Passengerfiles have it); a
    // WSGI app is started by holdfast's loader, so the two would contradict each other.
    if (appType === 'wsgi') {
      return { appType: 'wsgi', problem: `${describe('app_type')} and ${describe('app_start_command')} cannot both be set: a WSGI app is started by holdfast's loader` };
    }
    return { appType: 'generic' };
  }
  if (appType === 'generic') {
    return { appType, problem: `${describe('app_type')} needs app_start_command: the shell command that starts the app on $PORT` };
  }
  if (appType === 'wsgi') {
    if (startupFile !== undefined && !isPython(startupFile)) {
      return {
        appType,
        problem: `${describe('startup_file')} does not fit app_type "wsgi": a WSGI app's startup file is a Python file (.py) exposing \`application\`, ${WSGI_MARKER} by default`,
      };
    }
    if (startupFile === undefined && !existsSync(join(appDir, WSGI_MARKER))) {
      return { appType, problem: `app_type is "wsgi" but ${appDir} has no ${WSGI_MARKER}: add it (exposing \`application\`) or set startup_file` };
    }
    return { appType };
  }
  if (appType === 'node') {
    if (startupFile !== undefined && isPython(startupFile)) {
      return { appType, problem: `${describe('startup_file')} is a Python file but app_type is "node": set app_type "wsgi" for a WSGI app` };
    }
    return { appType };
  }
  if (startupFile !== undefined) return { appType: isPython(startupFile) ? 'wsgi' : 'node' };
  return { appType: existsSync(join(appDir, WSGI_MARKER)) ? 'wsgi' : 'node' };
}
