// The CLI's one edge for errors: a line per problem on stderr, prefixed "holdfast: ", and exit 1.
// Never a stack trace, unless HOLDFAST_DEBUG=1 asks for one.

import { spawnErrorSnapshot } from '../core/group/inspection';
import { ConfigError, SpawnError, isHoldfastError } from '../errors';
import { spawnErrorLines } from './status-render';

/** How much of a failed first start's output the terminal gets (the log has all of it). */
const SPAWN_OUTPUT_LINES = 30;

/** The lines that report `err` to a person. */
export function errorLines(err: unknown, env: NodeJS.ProcessEnv = process.env): string[] {
  let lines: string[];
  if (err instanceof ConfigError) lines = err.problems.map((p) => `holdfast: ${p}`);
  else if (err instanceof SpawnError) lines = spawnErrorLinesOf(err);
  else if (isHoldfastError(err)) lines = err.message.split('\n').map((l) => `holdfast: ${l}`);
  else lines = [`holdfast: internal error: ${err instanceof Error ? err.message : String(err)}`.split('\n')[0]!];
  if (env['HOLDFAST_DEBUG'] === '1' && err instanceof Error && err.stack) lines.push(err.stack);
  return lines;
}

/** A first start that could not start any process: the cause in one line, then the evidence the app wrote. */
function spawnErrorLinesOf(err: SpawnError): string[] {
  return [`holdfast: the app could not start: ${err.message.split('\n')[0]}`, ...spawnErrorLines(spawnErrorSnapshot(err), '  ', SPAWN_OUTPUT_LINES)];
}

/** Prints `err` as errorLines() and ends the process with exit code 1. */
export function exitWithError(err: unknown): never {
  process.stderr.write(`${errorLines(err).join('\n')}\n`);
  process.exit(1);
}
