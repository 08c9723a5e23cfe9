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

test('a process the app starts later is counted once the members are looked for again, and one that ended is dropped', async (t) => {
  const { spawn } = await import('node:child_process');
  // A group leader that starts a second process of its group after a moment, and stops it later.
  const leader = spawn(process.execPath, ['-e', `
    setTimeout(() => {
      const c = require('node:child_process').spawn(process.execPath, ['-e', 'const b = Buffer.alloc(64 * 1024 * 1024, 1); setInterval(() => b[0]++, 1000)'], { stdio: 'ignore' });
      process.on('SIGUSR2', () => c.kill('SIGKILL'));
    }, 1000);
    setInterval(() => {}, 1000);
  `], { detached: true, stdio: 'ignore' });
  t.after(() => {
    try {
      process.kill(-leader.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  });
  // One scan of /proc serves every sampler for half a second: let the one the tests above made expire.
  await new Promise((r) => setTimeout(r, 600));
  const sampler = new GroupUsageSampler(leader.pid!);
  const first = await sampler.sample();
  assert.ok(first.rssBytes > 0, 'the leader is there');
  await new Promise((r) => setTimeout(r, 1500)); // the second process is up (after 1 s), its 64 MB touched
  let grown = first;
  for (let i = 0; i < 5; i++) grown = await sampler.sample(); // the 6th sample scans /proc again
  assert.ok(grown.rssBytes > first.rssBytes + 50 * 1024 * 1024, `the later process counts: ${first.rssBytes} -> ${grown.rssBytes}`);
  process.kill(leader.pid!, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 500));
  const after = await sampler.sample(); // between scans: only the known members, and the gone one dropped
  assert.ok(after.rssBytes < grown.rssBytes - 50 * 1024 * 1024, `the ended process no longer counts: ${grown.rssBytes} -> ${after.rssBytes}`);
});
