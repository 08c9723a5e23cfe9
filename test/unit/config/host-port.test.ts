import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { formatHostPort, parseHostPort } from '../../../src/config/host-port';
import { load, makeAppDir, problems } from './config-fixture';

test('metrics_address and status_address are off unless set', () => {
  const config = load(makeAppDir());
  assert.equal(config.metricsAddress, undefined);
  assert.equal(config.statusAddress, undefined);
});

test('metrics_address and status_address take HOST:PORT from the file and the flags, IPv6 in brackets', () => {
  const dir = makeAppDir({ 'holdfast.json': { metrics_address: '127.0.0.1:9464', status_address: '[::1]:0' } });
  assert.deepEqual(load(dir).metricsAddress, { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(load(dir).statusAddress, { host: '::1', port: 0 });
  assert.deepEqual(load(dir, { metricsAddress: 'localhost:9100' }).metricsAddress, { host: 'localhost', port: 9100 });
});

test('an address without a port, with a port above 65535 or with a scheme is rejected naming the key', () => {
  const dir = makeAppDir({ 'holdfast.json': { metrics_address: '127.0.0.1' } });
  const allowed = 'HOST:PORT, like 127.0.0.1:9464 or [::1]:9464 (port 0 to 65535)';
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: metrics_address must be ${allowed} (got "127.0.0.1")`]);
  assert.deepEqual(problems(makeAppDir(), { statusAddress: '127.0.0.1:70000' }), [`--status-address must be ${allowed} (got "127.0.0.1:70000")`]);
  assert.deepEqual(problems(makeAppDir(), { statusAddress: 'http://127.0.0.1:80' }), [`--status-address must be ${allowed} (got "http://127.0.0.1:80")`]);
});

test('formatHostPort puts an IPv6 address in brackets, as a URL needs', () => {
  assert.equal(formatHostPort(parseHostPort('[::1]:9464')), '[::1]:9464');
  assert.equal(formatHostPort({ host: '10.0.0.5', port: 80 }), '10.0.0.5:80');
});
