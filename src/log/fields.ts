// What every log line carries, whoever writes it: errors as a short object whose `code` is an HF_
// code, no stack for the errors holdfast expects (HoldfastError: a port in use, a spawn error), and
// snake_case keys throughout.

import pino from 'pino';
import { isHoldfastError, SpawnError } from '../errors';

/** pino's level number of `error`: from here up a line must say which HF_ code it is about. */
const ERROR_LEVEL = 50;

/** camelCase -> snake_case, for the own properties Node and libraries put on errors (errorId, ...). */
function snake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/**
 * The `err` field. An expected error (HoldfastError) is its type, code and message, one line; its
 * cause's message says what the OS said. Anything else is a surprise: it keeps its stack.
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  if (isHoldfastError(err)) {
    const out: Record<string, unknown> = { type: err.name, code: err.code, message: err.message };
    if (err instanceof SpawnError) out['error_id'] = err.details.errorId;
    if (err.cause instanceof Error) out['cause'] = err.cause.message;
    return out;
  }
  const std = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(std)) if (v !== undefined) out[snake(k)] = v;
  return out;
}

/** The HF_ code an error line is about: the error's own, or HF_INTERNAL for one holdfast did not foresee. */
export function codeOf(err: unknown): string {
  return isHoldfastError(err) ? err.code : 'HF_INTERNAL';
}

/**
 * pino's logMethod hook: an error or fatal line without a `code` gets the one of its `err`
 * (HF_INTERNAL when there is none), so that every error line can be looked up in docs/error-codes.md.
 */
export function withErrorCode(this: pino.Logger, args: unknown[], method: (...a: unknown[]) => void, level: number): void {
  if (level >= ERROR_LEVEL) {
    const first = args[0];
    if (first instanceof Error) args = [{ err: first, code: codeOf(first) }, ...args.slice(1)];
    else if (typeof first === 'object' && first !== null) {
      const fields = first as Record<string, unknown>;
      if (fields['code'] === undefined) args = [{ ...fields, code: codeOf(fields['err']) }, ...args.slice(1)];
    } else args = [{ code: 'HF_INTERNAL' }, ...args];
  }
  method.apply(this, args);
}
