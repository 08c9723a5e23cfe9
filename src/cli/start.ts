// `holdfast start [APP_DIR]`: runs holdfast in the foreground until Ctrl-C (or `holdfast stop`);
// with --daemonize, in the background once the app serves. APP_DIR may be a PM2 ecosystem file.

import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { ConfigError, HoldfastError } from '../errors';
import { loadConfig } from '../config/load';
import { configOptions, flagProperty, optionHelp } from '../config/options';
import { judgePassengerFlags, passengerFlags } from '../config/passenger-flags';
import type { HoldfastConfig } from '../config/types';
import { createLogger, type LogHandle } from '../log/logger';
import { startSupervisor } from '../supervisor';
import { VERSION } from '../version';
import { DAEMON_CHILD_ENV, DaemonFailed, daemonize, isDaemonChild, reportToParent, startOutcome, writePidFile } from './daemon';
import { errorLines, exitWithError } from './exit';

/** Flags of `start` that loadConfig does not take. */
const OWN_FLAGS = new Set(['daemonize', 'pidFile']);
const FORCE_CONCURRENCY = 'forceMaxConcurrentRequestsPerProcess';

export function registerStart(program: Command): void {
  const start = program
    .command('start')
    .description('Start the app in APP_DIR behind holdfast, in the foreground (Ctrl-C stops it cleanly), or in the background with --daemonize.')
    .argument('[APP_DIR]', 'the app directory (default: the current directory), or a PM2 ecosystem.config.js')
    .option('--config <FILE>', 'read this config file instead of holdfast.json (or Passengerfile.json) in the app dir; may be a PM2 ecosystem.config.js')
    .option('-d, --daemonize', 'run in the background: return once the app serves (exit 0), or exit 1 with the spawn error')
    .option('--pid-file <FILE>', 'write holdfast\'s pid to FILE (removed when it stops)');

  for (const option of configOptions()) {
    const flags = `${option.short ? `${option.short}, ` : ''}${option.flag}${option.arg ? ` <${option.arg}>` : ''}`;
    const opt = new Option(flags, optionHelp(option.key));
    // No commander defaults: an absent flag must let the config file speak (flags > file > defaults).
    if (option.repeatable) opt.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    start.addOption(opt);
    if (!option.arg) start.addOption(new Option(`--no-${option.flag.slice(2)}`, `turn ${option.key} off, whatever the config file says`));
  }
  // Passenger's flags: known, so that they get an explanation rather than "unknown option".
  const passenger = passengerFlags();
  for (const p of passenger) start.addOption(new Option(p.takesValue ? `${p.flag} <VALUE>` : p.flag).hideHelp());
  start.addOption(new Option('--force-max-concurrent-requests-per-process <NUMBER>').hideHelp());

  start.action(async (appDir: string | undefined, allFlags: Record<string, unknown>) => {
    let log: LogHandle | undefined;
    let config: HoldfastConfig | undefined;
    const child = isDaemonChild();
    let removePidFile: (() => void) | undefined;
    try {
      const { flags, warnings } = passengerFlagsOut(allFlags, passenger);
      config = loadConfig({ appDir, flags, cwd: process.cwd() });
      if (allFlags['daemonize'] && !child) return await runDaemonized(config);
      if (child) delete process.env[DAEMON_CHILD_ENV]; // not for the app's processes
      log = openLog(config);
      for (const warning of [...warnings, ...(config.warnings ?? [])]) log.logger.warn({ event: 'config_warning' }, warning);
      if (typeof allFlags['pidFile'] === 'string') removePidFile = writePidFile(resolve(allFlags['pidFile']));
      const logFile = config.logFile;
      const running = await startSupervisor(config, {
        log,
        handleSignals: true,
        // Where it serves is the first thing a person wants to know, even when the log goes to a file.
        onListening: (bound) => {
          if (logFile && !child) process.stdout.write(`holdfast ${VERSION} serving ${config!.appDir} on http://${bound.address}:${bound.port} (log: ${logFile})\n`);
        },
      });
      if (child) {
        const outcome = startOutcome(running.control.snapshot());
        if (!outcome.serving) {
          await reportToParent({ type: 'failed', lines: outcome.lines });
          await running.close();
          removePidFile?.();
          log.flush();
          process.exit(1);
        }
        await reportToParent({ type: 'serving', address: running.address.address, port: running.address.port, pid: process.pid });
      }
      await running.closed;
      removePidFile?.();
      log.flush();
      process.exit(0);
    } catch (err) {
      removePidFile?.();
      if (log && config?.logFile) {
        // The terminal gets the one-line error below; a log file must tell the same story (no stack).
        const code = err instanceof HoldfastError ? err.code : 'HF_INTERNAL';
        log.logger.fatal({ code, event: 'start_failed' }, `holdfast could not start: ${err instanceof Error ? err.message : String(err)}`);
      }
      log?.flush();
      if (child) await reportToParent({ type: 'failed', lines: errorLines(err) });
      if (err instanceof DaemonFailed) {
        process.stderr.write(`${err.lines.join('\n')}\n`);
        process.exit(1);
      }
      exitWithError(err);
    }
  });
}

/** The parent of --daemonize: starts the child and returns with its outcome. */
async function runDaemonized(config: HoldfastConfig): Promise<void> {
  // Passenger's default: a log in the app dir.
  const logFile = config.logFile ?? join(config.appDir, 'log', 'holdfast.log');
  prepareLogFile(logFile);
  const text = await daemonize({
    argv: process.argv.slice(1),
    logFile,
    addLogFile: config.logFile === undefined,
    // Each of the first processes may take start_timeout; the child stops itself before this.
    deadlineMs: config.startTimeoutMs * Math.max(1, config.minInstances) + 60_000,
  });
  process.stdout.write(text);
  process.exit(0);
}

/** The config flags, with Passenger's flags taken out: mapped where they mean the same, else judged. */
function passengerFlagsOut(all: Record<string, unknown>, passenger: ReturnType<typeof passengerFlags>): { flags: Record<string, unknown>; warnings: string[] } {
  const flags: Record<string, unknown> = {};
  const byProperty = new Map(passenger.map((p) => [flagProperty(p.flag), p]));
  const given: Array<{ flag: (typeof passenger)[number]; value: unknown }> = [];
  for (const [property, value] of Object.entries(all)) {
    if (value === undefined) continue;
    const p = byProperty.get(property);
    if (p) given.push({ flag: p, value });
    else if (property === FORCE_CONCURRENCY) continue;
    else if (!OWN_FLAGS.has(property)) flags[property] = value;
  }
  // Passenger's way of saying --concurrency; -1, its default, is holdfast's 0 (unlimited).
  const forced = all[FORCE_CONCURRENCY];
  if (forced !== undefined) {
    if (all['concurrency'] !== undefined) throw new ConfigError(['give only one of --concurrency and --force-max-concurrent-requests-per-process (they mean the same)']);
    flags['concurrency'] = forced === '-1' ? '0' : forced;
  }
  const judged = judgePassengerFlags(given);
  if (judged.problems.length > 0) throw new ConfigError(judged.problems);
  return { flags, warnings: judged.warnings };
}

function openLog(config: HoldfastConfig): LogHandle {
  if (config.logFile) prepareLogFile(config.logFile);
  return createLogger({ file: config.logFile, level: config.logLevel, name: config.name });
}

/** Open it once ourselves first: pino's destination spins instead of failing on a path it cannot create. */
function prepareLogFile(file: string): void {
  try {
    makeDirs(dirname(file));
    closeSync(openSync(file, 'a', 0o640)); // the log is nobody else's business
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : (e.code ?? e.message);
    throw new HoldfastError('HF_CONFIG_INVALID', `log_file ${file} cannot be opened for writing (${why})`, { cause: err });
  }
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
