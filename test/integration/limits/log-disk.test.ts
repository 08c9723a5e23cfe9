// A full log disk drops log lines (counted), never requests: holdfast keeps serving, status answers,
// memory stays flat, and logging resumes once space is back (SIGUSR1 retries at once).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get, waitFor } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';
import { launch, rssBytes } from './launch';

function mountTmpfs(dir: string, size: string): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (error) {
    return String((error as { stderr?: Buffer }).stderr ?? error).trim();
  }
}

const mountPoint = mkdtempSync(join(tmpdir(), 'hf-tmpfs-'));
const mountProblem = mountTmpfs(mountPoint, '1m');
if (mountProblem !== null) rmSync(mountPoint, { recursive: true, force: true });

test('with the log on a full 1 MB disk holdfast keeps serving, status answers, RSS stays under 200 MB, and SIGUSR1 resumes logging once space is back', { skip: mountProblem === null ? false : `mounting a tmpfs is not permitted here (${mountProblem})` }, async () => {
  const logFile = join(mountPoint, 'holdfast.log');
  const hf = await launch(fixtureApp('limits'), ['--log-file', logFile, '--no-connection-handoff']);
  try {
    assert.equal(statSync(logFile).mode & 0o777, 0o640, 'the log file is created 0640');
    // 3 MB of app output, through the log, onto a 1 MB disk.
    for (let i = 0; i < 3; i++) {
      const r = await get(hf.url(`/spew?bytes=${1024 * 1024}`));
      assert.equal(r.status, 200);
    }
    await waitFor('the disk to be full', () => statSync(logFile).size > 900 * 1024, 10_000);
    await waitFor('the one warning on stderr', () => /cannot write the log .*ENOSPC/.test(hf.stderr()), 10_000);
    // More output while full: nothing grows, nothing hangs.
    for (let i = 0; i < 3; i++) assert.equal((await get(hf.url(`/spew?bytes=${1024 * 1024}`))).status, 200);
    const started = Date.now();
    const reply = await get(hf.url('/'));
    assert.equal(reply.status, 200);
    assert.ok(Date.now() - started < 1000, 'a request is answered at once');
    assert.equal(hf.stderr().match(/cannot write the log/g)?.length, 1, 'one warning per outage');
    assert.ok((await hf.appPids()).length > 0, 'holdfast status answers');
    const rss = rssBytes(hf.child.pid!);
    assert.ok(rss < 200 * 1024 * 1024, `holdfast RSS ${rss} stays under 200 MB`);

    // Space comes back; SIGUSR1 retries at once.
    truncateSync(logFile, 0);
    hf.child.kill('SIGUSR1');
    const resumed = await waitFor('logging to resume', () => {
      const text = readFileSync(logFile, 'utf8');
      return text.includes('"event":"log_resumed"') && text.includes('"signal":"SIGUSR1"') ? text : undefined;
    }, 10_000);
    const line = JSON.parse(resumed.split('\n').find((l) => l.includes('"log_resumed"'))!) as { dropped: number };
    assert.ok(line.dropped > 0, 'the dropped lines are counted');
    assert.equal((await get(hf.url('/'))).status, 200);
  } finally {
    const { code, leftover } = await hf.stop();
    execFileSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
    assert.equal(code, 0);
    assert.deepEqual(leftover, []);
  }
});

