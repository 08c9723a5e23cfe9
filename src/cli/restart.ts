// `holdfast restart [--rolling] [--no-wait]`: what deploy scripts call. It waits by default and
// exits 0 only when the new version runs, so a rollout across many hosts can stop at the first failure.

import type { Command } from 'commander';
import { connectAdmin } from '../admin/client';
import { HoldfastError } from '../errors';
import type { RestartProgress } from '../core/operations';
import { addNameOption, oneLineErrors, processIo, type CommandIo } from './admin-io';
import { renderRestartOutcome, renderRestartProgress } from './status-render';

export interface RestartCommandOptions {
  name?: string;
  /** undefined: the instance's rolling_restarts setting. */
  rolling?: boolean;
  /** commander's --no-wait sets it false. */
  wait?: boolean;
  /** --timeout SECONDS: give up waiting (exit 1) even before holdfast's own restart deadline. */
  timeout?: string;
}

/** Resolves with the exit code: 0 when the new version runs (or, without wait, the restart was accepted). */
export async function restartCommand(opts: RestartCommandOptions, io: CommandIo = processIo()): Promise<number> {
  const client = await connectAdmin({ name: opts.name, registryDir: io.registryDir, access: 'admin' });
  const rolling = opts.rolling === undefined ? {} : { rolling: opts.rolling };

  if (opts.wait === false) {
    const accepted = await client.restart({ ...rolling, wait: false });
    const gen = accepted.generation === null ? '' : ` (generation ${accepted.generation})`;
    io.stdout.write(`Restart of instance "${client.instance.name}" accepted${gen}; holdfast status shows its progress.\n`);
    return 0;
  }

  const status = await client.status();
  const app = status.groups[0]?.name ?? `instance "${client.instance.name}"`;
  const tty = io.stdout.isTTY === true;
  let shown = '';
  const onProgress = (p: RestartProgress) => {
    const line = renderRestartProgress(app, p);
    if (line === shown) return;
    shown = line;
    // On a terminal the line is rewritten in place; in a log, each step is its own line.
    io.stdout.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  };
  const timeoutSeconds = parseTimeout(opts.timeout);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    client.restart({ ...rolling, onProgress }),
    ...(timeoutSeconds === undefined
      ? []
      : [
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new HoldfastError('HF_RESTART_TIMEOUT', `the restart did not finish within --timeout ${timeoutSeconds} s; it goes on in holdfast (holdfast status shows it) until its own deadline`)),
              timeoutSeconds * 1000,
            );
          }),
        ]),
  ]).finally(() => {
    clearTimeout(timer);
    if (tty && shown !== '') io.stdout.write('\n');
  });
  const result = renderRestartOutcome(app, outcome);
  (result.ok ? io.stdout : io.stderr).write(result.text);
  return result.ok ? 0 : 1;
}

/** --timeout: a whole number of seconds from 1 to 86400, or a one-line error. */
function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new HoldfastError('HF_CONFIG_INVALID', `--timeout must be an integer from 1 to 86400 seconds (got ${text})`);
  return n;
}

export function registerRestart(program: Command): void {
  addNameOption(
    program
      .command('restart')
      .description('Restart the app with its new version; waits and exits non-zero when it cannot start.')
      .option('--rolling', 'replace processes one by one (default: the rolling_restarts setting)')
      .option('--no-rolling', 'stop all old processes first, then start new ones')
      .option('--no-wait', 'return as soon as the restart was accepted')
      .option('--timeout <SECONDS>', "exit 1 if the restart has not finished by then (holdfast's own deadline: processes x (start_timeout + health_check_timeout + probation_time + drain_timeout + 5 s) + 30 s)"),
  ).action(
    oneLineErrors(async (opts: RestartCommandOptions) => {
      // The outcome has been printed; only the exit code is left to say.
      const code = await restartCommand(opts);
      if (code !== 0) process.exitCode = code;
    }),
  );
}
