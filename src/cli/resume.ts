// `holdfast resume`: clears the resisting-deployment-error flag without a restart.

import type { Command } from 'commander';
import { connectAdmin } from '../admin/client';
import { addNameOption, oneLineErrors, processIo, type CommandIo } from './admin-io';

export async function resumeCommand(opts: { name?: string }, io: CommandIo = processIo()): Promise<void> {
  const client = await connectAdmin({ name: opts.name, registryDir: io.registryDir, access: 'admin' });
  const { was_resisting } = await client.resume();
  const who = `instance "${client.instance.name}"`;
  io.stdout.write(
    was_resisting
      ? `Resumed ${who}: it was resisting a deployment error; the flag is cleared and processes may be spawned again.\n`
      : `Instance "${client.instance.name}" was not resisting a deployment error; nothing changed.\n`,
  );
}

export function registerResume(program: Command): void {
  addNameOption(
    program.command('resume').description('Clear the "resisting deployment error" flag without a restart.'),
  ).action(oneLineErrors((opts: { name?: string }) => resumeCommand(opts)));
}
