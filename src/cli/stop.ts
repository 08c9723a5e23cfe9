// `holdfast stop`: asks the instance to stop cleanly and waits until its process is gone.

import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectAdmin } from '../admin/client';
import { pidAlive } from '../admin/instance';
import { HoldfastError } from '../errors';
import { addNameOption, oneLineErrors, processIo, type CommandIo } from './admin-io';

export interface StopOptions {
  name?: string;
  /** Seconds to wait for the process to go. */
  timeout?: string;
}

const DEFAULT_TIMEOUT_SECONDS = 60;
const POLL_MS = 100;

export async function stopCommand(opts: StopOptions, io: CommandIo = processIo()): Promise<void> {
  const timeoutSeconds = opts.timeout === undefined ? DEFAULT_TIMEOUT_SECONDS : Number(opts.timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new HoldfastError('HF_CONFIG_INVALID', `--timeout must be a positive number of seconds, not "${opts.timeout}"`);
  }
  const client = await connectAdmin({ name: opts.name, registryDir: io.registryDir, access: 'admin' });
  const { name, pid } = client.instance;
  await client.stop();
  io.stdout.write(`Stopping instance "${name}" (pid ${pid})...\n`);
  const deadline = Date.now() + timeoutSeconds * 1000;
  while (pidAlive(pid)) {
    if (Date.now() >= deadline) {
      throw new HoldfastError(
        'HF_SHUTTING_DOWN',
        `instance "${name}" (pid ${pid}) is still stopping after ${timeoutSeconds} s (draining slow requests?); wait, or send it SIGTERM`,
      );
    }
    await sleep(POLL_MS);
  }
  io.stdout.write(`Stopped instance "${name}".\n`);
}

export function registerStop(program: Command): void {
  addNameOption(
    program
      .command('stop')
      .description('Stop a running instance cleanly and wait until it is gone.')
      .option('--timeout <seconds>', `how long to wait for it to stop (default ${DEFAULT_TIMEOUT_SECONDS})`),
  ).action(oneLineErrors((opts: StopOptions) => stopCommand(opts)));
}
