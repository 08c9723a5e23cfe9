// One retry rule for requests and upgrades: once, idempotent and bodiless only, and never a request
// its process may have acted on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRetryable, shouldRetry } from '../../../src/proxy/retry-policy';

test('only a GET or HEAD without a body may be retried at all', () => {
  assert.equal(isRetryable('GET', false), true);
  assert.equal(isRetryable('HEAD', false), true);
  assert.equal(isRetryable('GET', true), false);
  assert.equal(isRetryable('POST', false), false);
  assert.equal(isRetryable(undefined, false), false);
});

test('a request that never reached its process is retried once; one the process may have started on never is', () => {
  const gone = { unreachable: true, reached: false, suspect: false };
  assert.equal(shouldRetry(true, 1, gone), true, 'refused or broken before it was written');
  assert.equal(shouldRetry(true, 2, gone), false, 'only once');
  assert.equal(shouldRetry(false, 1, gone), false, 'not a POST');
  assert.equal(shouldRetry(true, 1, { unreachable: true, reached: true, suspect: false }), true, 'written, but the process had not started on it');
  assert.equal(shouldRetry(true, 1, { unreachable: true, reached: true, suspect: true }), false, 'the one it was on: a possible poison request');
  assert.equal(shouldRetry(true, 1, { unreachable: false, reached: false, suspect: false }), false, 'the process answered badly: not a retry case');
});
