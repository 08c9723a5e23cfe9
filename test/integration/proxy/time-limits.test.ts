// max_request_queue_time and max_request_time: a request waiting too long in the queue gets 504
// HF_QUEUE_TIMEOUT (logged once per burst); a process stuck on one request too long is replaced,
// its visitor gets 504, and no other request fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Holdfast, get, pidAlive, stopClean, waitFor } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';

function frontApp(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'hf-limits-'));
  copyFileSync(join(fixtureApp('front'), 'app.js'), join(dir, 'app.js'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const json = { accept: 'application/json' };

test('a request queued past max_request_queue_time gets 504 HF_QUEUE_TIMEOUT, logged once for the burst', async () => {
  const app = frontApp();
  const hf = await Holdfast.start(app.dir, ['--concurrency', '1', '--max-pool-size', '1', '--max-request-queue-time', '1']);
  try {
    // Long enough to outlast the status look-up (a CLI run) and the queue limit.
    const busy = get(hf.url('/sleep?ms=6000'));
    await waitFor('the process to be busy', async () => (await hf.status()).groups[0]!.processes[0]!.sessions === 1);
    const started = performance.now();
    const queued = await Promise.all(Array.from({ length: 5 }, (_, i) => get(hf.url(`/queued-${i}`), json)));
    const waited = performance.now() - started;
    for (const reply of queued) {
      assert.equal(reply.status, 504, `${reply.body} after ${waited.toFixed(0)} ms`);
      assert.equal((JSON.parse(reply.body) as { error: { code: string } }).error.code, 'HF_QUEUE_TIMEOUT');
    }
    assert.ok(waited >= 950, `they waited ${waited.toFixed(0)} ms, at least the limit`);
    assert.equal((await busy).status, 200, 'the request being served is not affected');
    assert.match((await get(hf.url('/after'))).body, /^app \d+ \/after$/, 'a request that waits less is served');
    const logged = hf.lines.filter((l) => l.event === 'request_queue_timeout');
    assert.equal(logged.length, 1, 'one log line for the burst');
    assert.equal(logged[0]!.method, 'GET');
    assert.match(String(logged[0]!.path), /^\/queued-\d$/);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

const SETUPS = [
  { name: 'with --concurrency 1', args: ['--concurrency', '1'] },
  { name: 'for a Node app without a concurrency limit (then proxied, not handed off)', args: [] },
];

for (const setup of SETUPS) {
  test(`a request past max_request_time gets 504 and its process is replaced, with 0 failures among other requests, ${setup.name}`, async () => {
    const app = frontApp();
    const hf = await Holdfast.start(app.dir, [...setup.args, '--min-instances', '2', '--max-pool-size', '2', '--max-request-time', '1', '--probation-time', '0']);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    try {
      await waitFor('two processes', async () => (await hf.status()).groups[0]!.processes.filter((p) => p.state === 'enabled').length === 2);
      if (setup.args.length === 0) assert.ok(hf.lines.some((l) => l.event === 'handoff_off'), 'max_request_time keeps a Node app on the proxy path');
      const before = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
      let stop = false;
      const failures: string[] = [];
      let served = 0;
      const load = (async () => {
        while (!stop) {
          const reply = await get(hf.url('/sleep?ms=20'), {}, agent).catch((e: Error) => ({ status: 0, body: e.message }));
          if (reply.status === 200) served++;
          else failures.push(`${reply.status} ${reply.body.slice(0, 80)}`);
        }
      })();
      const started = performance.now();
      const stuck = await get(hf.url('/stuck?who=me'), { ...json, 'x-request-id': 'stuck-request-1' });
      const tookMs = performance.now() - started;
      assert.equal(stuck.status, 504);
      assert.equal((JSON.parse(stuck.body) as { error: { code: string } }).error.code, 'HF_REQUEST_TIMEOUT');
      assert.ok(tookMs >= 950 && tookMs < 5000, `answered after ${tookMs.toFixed(0)} ms`);
      const line = await hf.waitForLog('max_request_time_exceeded', (l) => l.event === 'max_request_time_exceeded');
      assert.equal(line.method, 'GET');
      assert.equal(line.path, '/stuck');
      assert.equal(line.requestId, 'stuck-request-1');
      const victim = line.app_pid as number;
      assert.ok(before.includes(victim));
      await hf.waitForLog('the stop of the stuck process', (l) => l.app_pid === victim && l.reason === 'max_request_time' && /stopped/.test(l.msg));
      assert.ok(!pidAlive(victim), 'the stuck process is gone');
      await waitFor('a replacement', async () => {
        const processes = (await hf.status()).groups[0]!.processes.filter((p) => p.state === 'enabled');
        return processes.length === 2 && !processes.some((p) => p.pid === victim);
      });
      stop = true;
      await load;
      assert.deepEqual(failures, [], 'no other request failed');
      assert.ok(served > 10, `the other requests went on being served (${served})`);
    } finally {
      agent.destroy();
      await stopClean(hf);
      app.remove();
    }
  });
}
