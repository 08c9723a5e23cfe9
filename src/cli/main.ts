// The holdfast command: one file per command under cli/, registered here.

import { Command } from 'commander';
import { registerStart } from './start';
import { registerAdminCommands } from './admin-commands';
import { VERSION } from '../version';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('holdfast')
    .description('Runs web apps behind a process pool with rolling restarts and deployment error resistance.')
    .version(VERSION)
    .showHelpAfterError(false)
    .exitOverride();
  registerStart(program);
  registerAdminCommands(program);
  return program;
}

export function main(argv: string[]): void {
  const program = buildProgram();
  program.parseAsync(argv).catch((err: unknown) => {
    // commander's own errors (unknown flag, missing argument) have printed their one line already.
    const code = (err as { code?: string; exitCode?: number }).code ?? '';
    if (code.startsWith('commander.')) {
      const exitCode = (err as { exitCode?: number }).exitCode ?? 1;
      process.exit(code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : exitCode === 0 ? 0 : 1);
    }
    process.stderr.write(`holdfast: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

// `node dist/src/cli/main.js ...` works like bin/holdfast.
if (require.main === module) main(process.argv);
