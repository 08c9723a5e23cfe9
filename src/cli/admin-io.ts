// What the admin commands share: the --name option and where they write.

import type { Command } from 'commander';
import { exitWithError } from './exit';

export interface CommandIo {
  /** rows and columns: the terminal's size, where it is one (status --watch fits its picture to it). */
  stdout: { write(text: string): unknown; isTTY?: boolean; rows?: number; columns?: number };
  stderr: { write(text: string): unknown };
  /** Default: HOLDFAST_INSTANCE_REGISTRY_DIR or the system temp dir. */
  registryDir?: string;
}

export function processIo(): CommandIo {
  return { stdout: process.stdout, stderr: process.stderr };
}

export function addNameOption(command: Command): Command {
  return command.option('--name <name>', 'the instance to talk to (needed when several run)');
}

/** An action whose errors end the process as one `holdfast: ...` line and exit 1 (cli/exit). */
export function oneLineErrors<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      exitWithError(err);
    }
  };
}
