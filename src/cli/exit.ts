// The CLI's one edge for errors: a line per problem on stderr, prefixed "holdfast: ", and exit 1.
// Never a stack trace, unless HOLDFAST_DEBUG=1 asks for one.

import { ConfigError, isHoldfastError } from '../errors';

/** The lines that report `err` to a person. */
export function errorLines(err: unknown, env: NodeJS.ProcessEnv = process.env): string[] {
  let lines: string[];
  if (err instanceof ConfigError) lines = err.problems.map((p) => `holdfast: ${p}`);
  else if (isHoldfastError(err)) lines = err.message.split('\n').map((l) => `holdfast: ${l}`);
  else lines = [`holdfast: internal error: ${err instanceof Error ? err.message : String(err)}`.split('\n')[0]!];
  if (env['HOLDFAST_DEBUG'] === '1' && err instanceof Error && err.stack) lines.push(err.stack);
  return lines;
}

/** Prints `err` as errorLines() and ends the process with exit code 1. */
export function exitWithError(err: unknown): never {
  process.stderr.write(`${errorLines(err).join('\n')}\n`);
  process.exit(1);
}
