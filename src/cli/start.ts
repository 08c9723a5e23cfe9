// `holdfast start [APP_DIR]`: runs holdfast in the foreground until Ctrl-C (or `holdfast stop`).

import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Command, Option } from 'commander';
import { HoldfastError } from '../errors';
import { loadConfig } from '../config/load';
import { configOptions, optionHelp } from '../config/options';
import type { HoldfastConfig } from '../config/types';
import { createLogger, type LogHandle } from '../log/logger';
import { startSupervisor } from '../supervisor';
import { exitWithError } from './exit';

export function registerStart(program: Command): void {
  const start = program
    .command('start')
    .description('Start the app in APP_DIR behind holdfast, in the foreground (Ctrl-C stops it cleanly).')
    .argument('[APP_DIR]', 'the app directory (default: the current directory)')
    .option('--config <FILE>', 'read this config file instead of holdfast.json (or Passengerfile.json) in the app dir');

  for (const option of configOptions()) {
    const flags = `${option.short ? `${option.short}, ` : ''}${option.flag}${option.arg ? ` <${option.arg}>` : ''}`;
    const opt = new Option(flags, optionHelp(option.key));
    // No commander defaults: an absent flag must let the config file speak (flags > file > defaults).
    if (option.repeatable) opt.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    start.addOption(opt);
    if (!option.arg) start.addOption(new Option(`--no-${option.flag.slice(2)}`, `turn ${option.key} off, whatever the config file says`));
  }

  start.action(async (appDir: string | undefined, flags: Record<string, unknown>) => {
    let log: LogHandle | undefined;
    let config: HoldfastConfig | undefined;
    try {
      config = loadConfig({ appDir, flags, cwd: process.cwd() });
      log = openLog(config);
      for (const warning of config.warnings ?? []) log.logger.warn(warning);
      const running = await startSupervisor(config, { log, handleSignals: true });
      await running.closed;
      log.flush();
      process.exit(0);
    } catch (err) {
      if (log && config?.logFile) {
        // The terminal gets the one-line error below; a log file must tell the same story (no stack).
        const code = err instanceof HoldfastError ? err.code : 'HF_INTERNAL';
        log.logger.fatal({ code }, `holdfast could not start: ${err instanceof Error ? err.message : String(err)}`);
      }
      log?.flush();
      exitWithError(err);
    }
  });
}

function openLog(config: HoldfastConfig): LogHandle {
  if (config.logFile) {
    // Open it once ourselves first: pino's destination spins instead of failing on a path it cannot create.
    try {
      makeDirs(dirname(config.logFile));
      closeSync(openSync(config.logFile, 'a', 0o640)); // the log is nobody else's business
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : (e.code ?? e.message);
      throw new HoldfastError('HF_CONFIG_INVALID', `log_file ${config.logFile} cannot be opened for writing (${why})`, { cause: err });
    }
  }
  return createLogger({ file: config.logFile, level: config.logLevel, name: config.name });
}

/** mkdir -p, one level at a time: Node's recursive mkdirSync never returns on some paths (/proc/x). */
function makeDirs(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
    makeDirs(dirname(dir));
    mkdirSync(dir);
  }
}
