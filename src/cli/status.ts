// `holdfast status [--json] [--watch] [--page]`: the picture of passenger-status, or the stable JSON
// of docs/status-json.md; redrawn every second with --watch (pm2 monit's job); --page prints the
// address of the live status page with its token.

import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectAdmin, readToken, type AdminClient } from '../admin/client';
import { findInstance } from '../admin/instance';
import type { StatusDocument } from '../admin/api';
import { HoldfastError } from '../errors';
import { addNameOption, oneLineErrors, processIo, type CommandIo } from './admin-io';
import { errorLines } from './exit';
import { formatTime, renderStatus } from './status-render';

export interface StatusOptions {
  name?: string;
  json?: boolean;
  watch?: boolean;
  /** Seconds between frames of --watch, as typed. */
  interval?: string;
  page?: boolean;
}

const DEFAULT_INTERVAL_SECONDS = 1;
const MAX_INTERVAL_SECONDS = 86_400;
// Cursor home, erase to the end of the line / of the screen, hide / show the cursor.
const HOME = '\x1b[H';
const ERASE_LINE = '\x1b[K';
const ERASE_BELOW = '\x1b[J';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';

export async function statusCommand(opts: StatusOptions, io: CommandIo = processIo(), signal?: AbortSignal): Promise<void> {
  if (opts.page) return printPage(opts, io);
  if (opts.watch) return watchStatus(opts, io, signal);
  const client = await connectAdmin({ name: opts.name, registryDir: io.registryDir, access: 'read' });
  const doc = await client.status();
  io.stdout.write(opts.json ? JSON.stringify(doc, null, 2) + '\n' : renderStatus(doc));
}

/** The status page's address with the read-only token, for the operator to open (once; a cookie keeps it). */
async function printPage(opts: StatusOptions, io: CommandIo): Promise<void> {
  const instance = await findInstance(opts.name, io.registryDir);
  const url = instance.status_url;
  if (typeof url !== 'string') {
    throw new HoldfastError(
      'HF_ADMIN_NOT_FOUND',
      `instance "${instance.name}" has no status page; start it with --status-address 127.0.0.1:PORT (or status_address in holdfast.json)`,
    );
  }
  io.stdout.write(`${url}?token=${encodeURIComponent(await readToken(instance, 'read'))}\n`);
}

/**
 * Redraws the status every interval until the signal aborts (Ctrl-C). On a terminal the picture is
 * drawn over itself from the top left; otherwise each frame is written after the last one, a blank
 * line between (with --json, one document per line). A failed poll shows its error and is retried:
 * the instance may be restarting.
 */
export async function watchStatus(opts: StatusOptions, io: CommandIo, signal?: AbortSignal): Promise<void> {
  const seconds = opts.interval === undefined ? DEFAULT_INTERVAL_SECONDS : Number(opts.interval);
  // Past a day a timer would overflow (and redraw at once, for ever): bounded like every duration.
  if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > MAX_INTERVAL_SECONDS) {
    throw new HoldfastError('HF_CONFIG_INVALID', `--interval must be a number of seconds from 0.1 to ${MAX_INTERVAL_SECONDS}, not "${opts.interval}"`);
  }
  const tty = io.stdout.isTTY === true;
  let client: AdminClient | undefined;
  if (tty) io.stdout.write(HIDE_CURSOR);
  try {
    for (let frame = 0; !signal?.aborted; frame++) {
      let text: string;
      let date = new Date().toISOString();
      try {
        client ??= await connectAdmin({ name: opts.name, registryDir: io.registryDir, access: 'read', timeoutMs: 10_000 });
        const doc = await client.status();
        date = doc.date;
        text = opts.json ? JSON.stringify(doc) + '\n' : tty ? renderToFit(doc, io.stdout.rows) : renderStatus(doc);
      } catch (err) {
        client = undefined; // find the instance afresh: it may have been restarted with new tokens
        text = errorLines(err, {}).join('\n') + '\n';
      }
      if (tty) {
        const title = `Every ${seconds}s: holdfast status${opts.name ? ` --name ${opts.name}` : ''}    ${formatTime(date)}    (Ctrl-C to quit)\n\n`;
        io.stdout.write(HOME + fitScreen(title + text, io.stdout.rows, io.stdout.columns) + ERASE_BELOW);
      } else {
        io.stdout.write(frame > 0 && !opts.json ? '\n' + text : text);
      }
      await sleep(seconds * 1000, undefined, signal ? { signal } : {}).catch(() => undefined);
    }
  } finally {
    if (tty) io.stdout.write(SHOW_CURSOR);
  }
}

/** Lines of a --watch frame above the status: the title and a blank line. */
const TITLE_LINES = 2;

/**
 * The status with as much of a spawn error's output as leaves the process list on the screen:
 * while resisting, a long error would otherwise push the processes below the bottom.
 */
export function renderToFit(doc: StatusDocument, rows: number | undefined): string {
  let text = renderStatus(doc);
  for (const options of [{ outputLines: 8 }, { outputLines: 4 }, { outputLines: 2 }, { outputLines: 0 }, { compact: true }]) {
    if (!rows || text.split('\n').length - 1 <= rows - 1 - TITLE_LINES) break;
    text = renderStatus(doc, options);
  }
  return text;
}

/** Cut to the terminal, so that drawing from the top never scrolls; each line erases what it covers. */
function fitScreen(text: string, rows: number | undefined, columns: number | undefined): string {
  let lines = text.replace(/\n$/, '').split('\n');
  if (rows && lines.length > rows - 1) lines = [...lines.slice(0, Math.max(1, rows - 2)), '...'];
  if (columns) lines = lines.map((l) => (l.length > columns ? l.slice(0, columns - 1) + '…' : l));
  return lines.map((l) => l + ERASE_LINE).join('\n') + '\n';
}

export function registerStatus(program: Command): void {
  addNameOption(
    program
      .command('status')
      .description('Show the pool of a running instance: groups, processes, restarts, deployment errors.')
      .option('--json', 'print the status as JSON (fields: docs/status-json.md)')
      .option('-w, --watch', 'redraw the status every second until Ctrl-C')
      .option('--interval <SECONDS>', 'seconds between redraws of --watch (default: 1)')
      .option('--page', 'print the address of the live status page (status_address) with the read-only token'),
  ).action(
    oneLineErrors(async (opts: StatusOptions) => {
      if (!opts.watch) return statusCommand(opts);
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await statusCommand(opts, processIo(), ac.signal);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    }),
  );
}
