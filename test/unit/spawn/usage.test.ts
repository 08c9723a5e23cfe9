import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GroupUsageSampler, parseProcStat } from '../../../src/spawn/usage';

test('parses /proc stat even when the command name holds spaces and parentheses', () => {
  const text = '4242 (my (odd) app) S 1 4240 4240 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 123 1000 200 18446744073709551615';
  assert.deepEqual(parseProcStat(4242, text), { pid: 4242, pgrp: 4240, state: 'S', cpuTicks: 300 });
});

test('samples this test process group with some memory and a CPU percentage', async () => {
  const own = parseProcStat(process.pid, readFileSync('/proc/self/stat', 'utf8'));
  assert.ok(own);
  const sampler = new GroupUsageSampler(own.pgrp, Date.now() - 1000);
  const sample = await sampler.sample();
  assert.ok(sample.rssBytes > 1024 * 1024, `rss ${sample.rssBytes}`);
  assert.ok(sample.cpuPercent >= 0);
});

test('reports nothing for a group that does not exist', async () => {
  const sample = await new GroupUsageSampler(2 ** 22 + 1).sample();
  assert.deepEqual(sample, { rssBytes: 0, cpuPercent: 0 });
});
