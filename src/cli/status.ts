// `holdfast status [--json]`: the picture of passenger-status, or the stable JSON of docs/status-json.md.

import type { Command } from 'commander';
import { connectAdmin } from '../admin/client';
import { addNameOption, oneLineErrors, processIo, type CommandIo } from './admin-io';
import { renderStatus } from './status-render';

export interface StatusOptions {
  name?: string;
  json?: boolean;
}

export async function statusCommand(opts: StatusOptions, io: CommandIo = processIo()): Promise<void> {
  const client = await connectAdmin({ name: opts.name, registryDir: io.registryDir, access: 'read' });
  const doc = await client.status();
  io.stdout.write(opts.json ? JSON.stringify(doc, null, 2) + '\n' : renderStatus(doc));
}

export function registerStatus(program: Command): void {
  addNameOption(
    program
      .command('status')
      .description('Show the pool of a running instance: groups, processes, restarts, deployment errors.')
      .option('--json', 'print the status as JSON (fields: docs/status-json.md)'),
  ).action(oneLineErrors((opts: StatusOptions) => statusCommand(opts)));
}
