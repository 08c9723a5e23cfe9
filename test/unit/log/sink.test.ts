import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BURST, RateLimiter, WINDOW_MS, type Suppressed } from '../../../src/log/rate-limit';
import { LogSink, RETRY_MS } from '../../../src/log/sink';

test('a sink whose writes fail drops and counts lines, warns once, retries after a while and says how many were dropped', () => {
  let now = 1_000;
  const warnings: string[] = [];
  // /dev/full: every write fails with ENOSPC.
  const dir = mkdtempSync(join(tmpdir(), 'hf-sink-'));
  try {
    const sink = new LogSink('/dev/full', 1, () => now, (l) => warnings.push(l));
    for (let i = 0; i < 100; i++) assert.equal(sink.write(`{"n":${i}}\n`), true);
    assert.deepEqual(sink.stats(), { dropped: 100, failing: true });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /cannot write the log to \/dev\/full \(ENOSPC\)/);
    now += RETRY_MS;
    sink.write('{"n":100}\n');
    assert.equal(sink.stats().dropped, 101, 'a retry that fails drops the line too');
    assert.equal(warnings.length, 1, 'one warning per outage');

    const file = join(dir, 'log');
    const good = new LogSink(file, 1, () => now);
    assert.equal(statSync(file).mode & 0o777, 0o640 & ~process.umask());
    good.write('{"a":1}\n');
    assert.equal(readFileSync(file, 'utf8'), '{"a":1}\n');
    good.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('identical warnings pass BURST times per window, the rest are counted and reported when the window is over', () => {
  let now = 0;
  const limiter = new RateLimiter(() => now);
  const reports: Suppressed[] = [];
  const report = (s: Suppressed) => reports.push(s);
  let passed = 0;
  for (let i = 0; i < 100; i++) if (limiter.admit(50, `spawn error ${(0x10000000 + i * 7919).toString(16)}: exited with code ${i}`, undefined, report)) passed++;
  assert.equal(passed, BURST, 'lines that differ only in ids and numbers are one kind');
  assert.ok(limiter.admit(50, 'another error entirely', undefined, report));
  assert.ok(limiter.admit(30, 'info lines are never limited', undefined, report));
  for (let i = 0; i < 10; i++) assert.ok(limiter.admit(30, 'info lines are never limited', undefined, report));
  assert.deepEqual(reports, []);
  now += WINDOW_MS;
  assert.ok(limiter.admit(50, 'spawn error 1fff0000: exited with code 1', undefined, report));
  assert.equal(reports.length, 1);
  assert.equal((reports[0] as Suppressed).count, 100 - BURST);
  limiter.admit(50, 'another error entirely', undefined, report);
  now += WINDOW_MS;
  limiter.sweep(now, report);
  assert.equal(reports.length, 1, 'nothing was suppressed of the other kinds');
});

