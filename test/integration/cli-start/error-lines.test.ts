// How the CLI words an error (cli/exit.ts), shared by every command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, HoldfastError } from '../../../src/errors';
import { errorLines } from '../../../src/cli/exit';

test('a config error prints each problem as its own line', () => {
  assert.deepEqual(errorLines(new ConfigError(['a: x must be 1 (got 2)', '--y must be 3 (got 4)']), {}), [
    'holdfast: a: x must be 1 (got 2)',
    'holdfast: --y must be 3 (got 4)',
  ]);
});

test('a holdfast error prints its message', () => {
  assert.deepEqual(errorLines(new HoldfastError('HF_LISTEN', 'port 3000 is already in use'), {}), ['holdfast: port 3000 is already in use']);
});

test('any other error is an internal error, in one line and without its stack', () => {
  const lines = errorLines(new TypeError('x is not a function\nmore'), {});
  assert.deepEqual(lines, ['holdfast: internal error: x is not a function']);
  assert.deepEqual(errorLines('a string was thrown', {}), ['holdfast: internal error: a string was thrown']);
});

test('HOLDFAST_DEBUG=1 adds the stack', () => {
  const lines = errorLines(new Error('boom'), { HOLDFAST_DEBUG: '1' });
  assert.equal(lines[0], 'holdfast: internal error: boom');
  assert.match(lines[1]!, /^Error: boom\n\s+at /);
});
