import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closest, editDistance, toSnakeCase } from '../../../src/config/suggest';

const KEYS = ['port', 'address', 'max_pool_size', 'min_instances', 'max_requests', 'max_request_queue_size', 'start_timeout', 'drain_timeout'];

test('suggests the key a typo, a truncation or another case style meant', () => {
  assert.equal(closest('max_pool', KEYS), 'max_pool_size');
  assert.equal(closest('maxPoolSize', KEYS), 'max_pool_size');
  assert.equal(closest('max-pool-size', KEYS), 'max_pool_size');
  assert.equal(closest('MIN_INSTANCES', KEYS), 'min_instances');
  assert.equal(closest('prot', KEYS), 'port');
  assert.equal(closest('adress', KEYS), 'address');
  assert.equal(closest('max_request', KEYS), 'max_requests');
});

test('suggests nothing when no key is close', () => {
  assert.equal(closest('frobnicate', KEYS), undefined);
  assert.equal(closest('ssl', KEYS), undefined);
});

test('folds camelCase and kebab-case to snake_case', () => {
  assert.equal(toSnakeCase('maxRequestQueueSize'), 'max_request_queue_size');
  assert.equal(toSnakeCase('log-level'), 'log_level');
});

test('counts insertions, deletions and substitutions', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('same', 'same'), 0);
});
