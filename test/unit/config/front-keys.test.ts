// The keys of what holdfast does in front of the app: read from holdfast.json, from a
// Passengerfile.json (Passenger's own names, no longer rejected) and from flags; bad values named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { load, makeAppDir, problems } from './config-fixture';

test("a Passengerfile's static_files_dir, data_buffer_dir, max_request_queue_time and max_request_time are read", () => {
  const dir = makeAppDir({
    'Passengerfile.json': { static_files_dir: 'assets', data_buffer_dir: 'tmp/buffers', max_request_queue_time: '30', max_request_time: 120 },
    'tmp/buffers/.keep': '',
  });
  const config = load(dir);
  assert.equal(config.staticFilesDir, 'assets');
  assert.equal(config.dataBufferDir, join(dir, 'tmp/buffers'), 'relative to the file');
  assert.equal(config.maxRequestQueueTimeMs, 30_000);
  assert.equal(config.maxRequestTimeMs, 120_000);
  assert.deepEqual(config.warnings, []);
});

test('holdfast.json and flags set static files, buffering and the limits; flags win', () => {
  const dir = makeAppDir({ 'holdfast.json': { static_files: false, static_files_cache_control: '', request_buffering: false, max_request_body_size: 8 } });
  const fromFile = load(dir);
  assert.equal(fromFile.staticFiles, false);
  assert.equal(fromFile.staticFilesCacheControl, '');
  assert.equal(fromFile.requestBuffering, false);
  assert.equal(fromFile.maxRequestBodyBytes, 8 * 1024 * 1024);
  const fromFlags = load(dir, { staticFiles: true, maxRequestBodySize: '0', dataBufferDir: '/tmp' });
  assert.equal(fromFlags.staticFiles, true);
  assert.equal(fromFlags.maxRequestBodyBytes, 0);
  assert.equal(fromFlags.dataBufferDir, '/tmp');
});

test('out-of-range limits are named with what is allowed', () => {
  const dir = makeAppDir({ 'holdfast.json': { max_request_time: -1, max_request_queue_time: 100000, max_request_body_size: 'big', static_files_dir: '' } });
  const found = problems(dir);
  const file = join(dir, 'holdfast.json');
  assert.ok(found.includes(`${file}: max_request_time must be an integer from 0 to 86400 (got -1)`), found.join('\n'));
  assert.ok(found.includes(`${file}: max_request_queue_time must be an integer from 0 to 86400 (got 100000)`), found.join('\n'));
  assert.ok(found.includes(`${file}: max_request_body_size must be an integer from 0 to 1048576 (got "big")`), found.join('\n'));
  assert.ok(found.some((p) => p.startsWith(`${file}: static_files_dir must be a non-empty string`)), found.join('\n'));
});

test('a data_buffer_dir that does not exist or is a file stops start, naming it', () => {
  const dir = makeAppDir({ 'holdfast.json': { data_buffer_dir: 'nope' }, 'file.txt': 'x' });
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: data_buffer_dir ${join(dir, 'nope')} does not exist`]);
  assert.deepEqual(problems(dir, { dataBufferDir: 'file.txt' }), [`--data-buffer-dir ${join(dir, 'file.txt')} is not a directory`]);
});
