// No visitor can grow the log without bound: 10,000 `OPTIONS *` requests, or 10,000 requests to an
// app that cannot start, add less than 100 KB to it (repeated errors are rate-limited).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';
import { launch } from './launch';

const REQUESTS = 10_000;
const PARALLEL = 16;

/** Sends `count` requests over PARALLEL keep-alive connections; returns the status codes seen. */
async function flood(port: number, method: string, path: string, count: number): Promise<Map<number, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: PARALLEL });
  const statuses = new Map<number, number>();
  let sent = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          statuses.set(res.statusCode!, (statuses.get(res.statusCode!) ?? 0) + 1);
          resolve();
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
  const worker = async (): Promise<void> => {
    while (sent < count) {
      sent++;
      await one();
    }
  };
  try {
    await Promise.all(Array.from({ length: PARALLEL }, worker));
  } finally {
    agent.destroy();
  }
  return statuses;
}

function logSize(file: string): number {
  return statSync(file).size;
}

test('10,000 OPTIONS * requests are answered by holdfast and grow the log by less than 100 KB', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-flood-'));
  const logFile = join(dir, 'holdfast.log');
  const hf = await launch(fixtureApp('hello'), ['--log-file', logFile, '--no-connection-handoff']);
  try {
    const before = logSize(logFile);
    const statuses = await flood(hf.port, 'OPTIONS', '*', REQUESTS);
    assert.deepEqual([...statuses], [[200, REQUESTS]], 'every OPTIONS * gets 200');
    const grown = logSize(logFile) - before;
    assert.ok(grown < 100 * 1024, `the log grew ${grown} bytes`);
  } finally {
    const { code, leftover } = await hf.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0);
    assert.deepEqual(leftover, []);
  }
});

test('10,000 requests to an app that cannot start grow the log by less than 100 KB, with "similar suppressed" counts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-flood-'));
  const logFile = join(dir, 'holdfast.log');
  // min_instances 0: holdfast starts; each request asks for a process that cannot boot.
  const hf = await launchDown(fixtureApp('crash-on-boot'), logFile);
  try {
    const before = logSize(logFile);
    const statuses = await flood(hf.port, 'GET', '/', REQUESTS);
    assert.equal(statuses.get(503), REQUESTS, `every request gets the error page: ${JSON.stringify([...statuses])}`);
    const grown = logSize(logFile) - before;
    assert.ok(grown < 100 * 1024, `the log grew ${grown} bytes`);
    const text = await waitFor('a "similar suppressed" line', () => {
      const t = readFileSync(logFile, 'utf8');
      return t.includes('"event":"log_suppressed"') ? t : undefined;
    }, 15_000);
    const suppressed = text.split('\n').filter((l) => l.includes('"event":"log_suppressed"')).map((l) => (JSON.parse(l) as { suppressed: number; msg: string }));
    assert.ok(suppressed.every((s) => s.suppressed > 0 && /^\d+ similar suppressed/.test(s.msg)));
  } finally {
    const { code, leftover } = await hf.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0);
    assert.deepEqual(leftover, []);
  }
});

async function launchDown(app: string, logFile: string) {
  return launch(app, ['--log-file', logFile, '--min-instances', '0', '--no-connection-handoff'], { waitForProcess: false });
}
