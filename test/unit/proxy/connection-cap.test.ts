import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionCap, openFileLimit } from '../../../src/proxy/connection-cap';
import { HoldfastError } from '../../../src/errors';

test('the connection cap is half of what the fd limit leaves after the reserve; a max_connections above it is refused', () => {
  assert.equal(openFileLimit('Limit  Soft Limit  Hard Limit  Units\nMax open files            1024                 4096                 files\n'), 1024);
  assert.equal(openFileLimit('Max open files            unlimited            unlimited            files\n'), undefined);
  assert.deepEqual(connectionCap(0, 6, 1024), { cap: 452, nofile: 1024, allowed: 452 });
  assert.equal(connectionCap(100, 6, 1024).cap, 100);
  assert.throws(() => connectionCap(1000, 6, 1024), (e: unknown) => e instanceof HoldfastError && e.code === 'HF_CONFIG_INVALID' && /max_connections 1000 .*ulimit -n 1024.*at most 452/.test(e.message));
  assert.throws(() => connectionCap(0, 6, 128), /too low/);
});
