// Every number has a maximum that the schema states, and no duration can overflow Node's timers
// (2^31 - 1 ms); out of range is an error naming the key and the range, never a clamp.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { propertySchema, settingKeys } from '../../../src/config/schema';
import { makeAppDir, problems } from './config-fixture';

const MAX_TIMER_MS = 2 ** 31 - 1;
const SECONDS_KEYS = ['pool_idle_time', 'start_timeout', 'drain_timeout', 'probation_time'];

test('every integer option has a maximum, and every duration fits a Node timer', () => {
  for (const key of settingKeys()) {
    const p = propertySchema(key);
    if (p.type !== 'integer') continue;
    assert.equal(typeof p.maximum, 'number', `${key} has no maximum`);
  }
  for (const key of SECONDS_KEYS) assert.ok(propertySchema(key).maximum! * 1000 <= MAX_TIMER_MS, `${key} overflows a timer`);
});

test('a duration past its maximum is refused with one line naming the flag or key and the range', () => {
  assert.deepEqual(problems(makeAppDir(), { startTimeout: '2147484' }), ['--start-timeout must be an integer from 1 to 3600 (got 2147484)']);
  const dir = makeAppDir({ 'holdfast.json': { drain_timeout: 99_999_999 } });
  assert.deepEqual(problems(dir), [`${dir}/holdfast.json: drain_timeout must be an integer from 0 to 86400 (got 99999999)`]);
  assert.deepEqual(problems(makeAppDir(), { maxConnections: '2000000' }), ['--max-connections must be an integer from 0 to 1000000 (got 2000000)']);
});

test('a NUL byte in an envvar name or value is refused at config time', () => {
  assert.deepEqual(problems(makeAppDir(), { envvar: ['A=x\u0000y'] }), ['--envvar A must not contain a NUL byte']);
  const dir = makeAppDir({ 'holdfast.json': { envvars: { 'B\u0000C': '1', D: 'a\u0000' } } });
  const found = problems(dir);
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(found.join('\n'), /envvars: the variable name "B\\u0000C" must not be empty or contain "=" or a NUL byte/);
  assert.match(found.join('\n'), /envvars\.D must not contain a NUL byte/);
});
