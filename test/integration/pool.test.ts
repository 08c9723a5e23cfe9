// The pool lives (issue 3): scaling with traffic, the queue, idle cleaning, recycling, crash recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Holdfast, get, pidAlive, waitFor, stopClean } from '../helpers/holdfast';
import type { LogLine } from '../helpers/holdfast';
import { runLoad } from '../helpers/load';
import { fixtureApp } from '../helpers/paths';
import { AppDir } from '../helpers/apps';

async function processCount(hf: Holdfast): Promise<number> {
  const s = await hf.status();
  return s.groups[0]!.processes.filter((p) => p.state === 'enabled').length;
}

test('a CPU-bound Node app grows from one process under load and shrinks back after pool_idle_time', async () => {
  const hf = await Holdfast.start(fixtureApp('cpu'), ['--max-pool-size', '4', '--pool-idle-time', '2']);
  try {
    assert.equal(await processCount(hf), 1);
    const ac = new AbortController();
    let peak = 1;
    const load = runLoad({ url: hf.url('/?ms=20'), connections: 24, durationMs: 12_000, signal: ac.signal });
    await waitFor('the pool to grow', async () => (peak = Math.max(peak, await processCount(hf))) > 1, 10_000, 250);
    ac.abort();
    const result = await load;
    assert.equal(result.failed, 0, result.errors.join('\n'));
    assert.ok(peak > 1);
    await waitFor('the pool to shrink back to min_instances', async () => (await processCount(hf)) === 1, 15_000, 250);
    assert.ok(hf.lines.some((l) => l.reason === 'idle'), 'idle processes were shut down for idleness');
  } finally {
    await stopClean(hf);
  }
});

test('with max_pool_size 1, concurrency 1 and a queue of 5, the 7th concurrent slow request gets 503 at once and the first 6 succeed', async () => {
  const hf = await Holdfast.start(fixtureApp('express'), ['--max-pool-size', '1', '--concurrency', '1', '--max-request-queue-size', '5']);
  try {
    const agent = new http.Agent({ keepAlive: false, maxSockets: 10 });
    const first = get(hf.url('/slow?ms=6000'), {}, agent);
    await new Promise((r) => setTimeout(r, 200));
    const queued = Array.from({ length: 5 }, () => get(hf.url('/slow?ms=100'), {}, agent));
    await waitFor('five queued requests', async () => (await hf.status()).groups[0]!.requests_in_queue === 5, 5000);
    const t0 = Date.now();
    const seventh = await get(hf.url('/slow?ms=100'), {}, agent);
    assert.equal(seventh.status, 503);
    assert.ok(Date.now() - t0 < 1000, 'answered at once, not after waiting');
    const rest = await Promise.all([first, ...queued]);
    assert.deepEqual(rest.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    agent.destroy();
  } finally {
    await stopClean(hf);
  }
});

test('with max_requests 100, 250 requests are served with none failed and no process serving more than 100', async () => {
  const hf = await Holdfast.start(fixtureApp('hello'), ['--max-requests', '100', '--max-pool-size', '2']);
  try {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const perPid = new Map<string, number>();
    let failed = 0;
    for (let batch = 0; batch < 250 / 5; batch++) {
      const replies = await Promise.all(Array.from({ length: 5 }, () => get(hf.url('/pid'), {}, agent).catch(() => ({ status: 0, body: '' }))));
      for (const r of replies) {
        if (r.status !== 200) failed++;
        else perPid.set(r.body, (perPid.get(r.body) ?? 0) + 1);
      }
    }
    agent.destroy();
    assert.equal(failed, 0);
    assert.equal([...perPid.values()].reduce((a, b) => a + b, 0), 250);
    assert.ok([...perPid.values()].every((n) => n <= 100), JSON.stringify([...perPid]));
    assert.ok(perPid.size >= 3, 'processes were recycled');
  } finally {
    await stopClean(hf);
  }
});

test('a process that grows past memory_limit is replaced within seconds with no failed request under load', async () => {
  const hf = await Holdfast.start(fixtureApp('memory-hog'), ['--memory-limit', '150', '--min-instances', '2', '--max-pool-size', '3']);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    const ac = new AbortController();
    const load = runLoad({ url: hf.url('/'), connections: 8, durationMs: 20_000, signal: ac.signal });
    const before = new Set(hf.appPids);
    // Grow until one process crosses the limit (the load spreads the growth over both), bounded.
    const isStop = (l: LogLine) => l.reason === 'memory_limit' && l.event === 'process_stopped';
    for (let i = 0; i < 40 && !hf.lines.some(isStop); i++) {
      await get(hf.url('/grow'));
      await new Promise((r) => setTimeout(r, 250));
    }
    const stopped = await hf.waitForLog('a memory_limit stop', isStop, 15_000);
    assert.ok(before.has(stopped.app_pid as number));
    await waitFor('the replacement', async () => (await processCount(hf)) >= 2, 10_000, 200);
    ac.abort();
    const result = await load;
    assert.equal(result.failed, 0, result.errors.join('\n'));
    assert.ok(!pidAlive(stopped.app_pid as number));
  } finally {
    await stopClean(hf);
  }
});

/**
 * Under 16-connection load on two processes, kill -9 one (after `before` looked at it) and wait
 * until the pool is back to two; `after` runs then, while the load goes on for one more second.
 */
async function killOneUnderLoad<B, A>(hf: Holdfast, before: (victim: number) => Promise<B>, after: () => Promise<A>) {
  await waitFor('two processes', () => hf.appPids.size >= 2);
  const ac = new AbortController();
  const load = runLoad({ url: hf.url('/'), connections: 16, durationMs: 10_000, signal: ac.signal });
  await new Promise((r) => setTimeout(r, 1000));
  const victim = [...hf.appPids][0]!;
  const seen = await before(victim);
  process.kill(victim, 'SIGKILL');
  await hf.waitForLog('the death logged', (l) => l.app_pid === victim && (l.event === 'process_died' || l.event === 'process_crashed'));
  await waitFor('the pool back to two', async () => (await processCount(hf)) === 2 && hf.livePids().length === 2, 10_000, 200);
  const later = await after();
  await new Promise((r) => setTimeout(r, 1000));
  ac.abort();
  const result = await load;
  assert.ok(result.requests > 100);
  return { result, seen, later };
}

// The proxy's guarantee: only the requests the killed process had received fail (they are not
// retried: it may have acted on them, and a request that kills its process must not kill another);
// the crash is logged with exactly those requests, and every other request succeeds.
test('proxied: kill -9 of one of two processes under load fails only the requests it had received, and the pool is back to two', async () => {
  const hf = await Holdfast.start(fixtureApp('hello'), ['--min-instances', '2', '--no-connection-handoff']);
  try {
    let victim = 0;
    const { result } = await killOneUnderLoad(hf, async (pid) => void (victim = pid), async () => undefined);
    const crash = hf.lines.find((l) => l.app_pid === victim && (l.event === 'process_crashed' || l.event === 'process_died'));
    const received = crash?.event === 'process_crashed' ? (crash['requests'] as unknown[]).length : 0;
    assert.ok(result.failed <= received, `${result.failed} failed, but the victim had received only ${received}: ${result.errors.join('\n')}`);
    assert.equal(Object.keys(result.statuses).filter((s) => s !== '200' && s !== '502').length, 0, JSON.stringify(result.statuses));
  } finally {
    await stopClean(hf);
  }
});

// The Node hook reports the request ids in progress as its process exits, and holdfast retries
// elsewhere only the requests it had not started: a request that killed its process must never be
// sent to a second one, however many requests were in progress and whatever ids visitors sent.
async function poisonOnOneProcess(sendPoison: (hf: Holdfast, victim: number) => Promise<Array<{ status: number }>>): Promise<void> {
  const app = new AppDir('poison', 'v1', 'node');
  const hf = await Holdfast.start(app.dir, ['--min-instances', '1', '--max-pool-size', '1', '--no-connection-handoff']);
  try {
    await waitFor('the process out of probation', async () => (await hf.status()).groups[0]!.processes.every((p) => !p.in_probation), 15_000, 200);
    const [victim] = [...hf.appPids];
    const failed = await sendPoison(hf, victim!);
    for (const r of failed) assert.ok(r.status === 502 || r.status === 0, `a request the process had started fails (${r.status})`);
    await waitFor('a new process', () => [...hf.appPids].some((pid) => pid !== victim && pidAlive(pid)), 15_000);
    await new Promise((res) => setTimeout(res, 1000));
    const deaths = hf.lines.filter((l) => l.event === 'process_crashed' || l.event === 'process_died');
    assert.equal(deaths.length, 1, `one process died: ${JSON.stringify(deaths)}`);
    assert.equal(hf.lines.filter((l) => l.event === 'request_retried').length, 0, 'nothing retried');
    assert.equal((await get(hf.url('/'))).status, 200);
  } finally {
    await stopClean(hf);
    app.remove();
  }
}

const sessions = async (hf: Holdfast): Promise<number> => (await hf.status()).groups[0]!.processes[0]?.sessions ?? -1;
const failure = (e: Error): { status: number; body: string } => ({ status: 0, body: e.message });

test('proxied: a request that kills its process is not retried even when another request with the same request id finished on that process while it ran', () =>
  poisonOnOneProcess(async (hf, victim) => {
    const poison = get(hf.url('/poison-later'), { 'x-request-id': 'same-id' }).catch(failure);
    await waitFor('the poison request in progress', async () => (await sessions(hf)) === 1, 5000, 20);
    const other = await get(hf.url('/'), { 'x-request-id': 'same-id' });
    assert.equal(other.status, 200, 'the other request is served by the same process');
    assert.match(other.body, new RegExp(`pid ${victim}$`));
    return [await poison];
  }));

test('proxied: with 600 requests with long ids in progress, the request that kills the process is not retried (the exit report is not cut)', () =>
  poisonOnOneProcess(async (hf) => {
    // 600 ids of 120 characters: a one-line report (72 KB) would arrive in more than one read of the
    // pipe (64 KiB), and holdfast cuts a line at 16 KiB.
    const waiting = Array.from({ length: 600 }, (_, i) => get(hf.url('/wait'), { 'x-request-id': `${String(i).padStart(3, '0')}-${'w'.repeat(116)}` }).catch(failure));
    await waitFor('600 requests in progress', async () => (await sessions(hf)) === 600, 10_000, 50);
    const poison = get(hf.url('/poison-later'), { 'x-request-id': 'the-poison' }).catch(failure);
    return Promise.all([...waiting, poison]);
  }));

// On the hand-off path holdfast never saw the requests, so it cannot retry them (as with Node's
// cluster module): the connections of the killed process end, every other request succeeds.
test('handed off: kill -9 of one of two processes under load ends only its own connections, and the pool is back to two', async () => {
  // probation_time 0: processes take connections at once (in probation they are proxied).
  const hf = await Holdfast.start(fixtureApp('hello'), ['--min-instances', '2', '--probation-time', '0']);
  try {
    const connections = async () => (await hf.status()).groups[0]!.processes;
    const { result, seen: held, later: afterRecovery } = await killOneUnderLoad(
      hf,
      async (victim) => (await connections()).find((p) => p.pid === victim)!.connections,
      async () => (await connections()).reduce((n, p) => n + p.connections, 0),
    );
    assert.ok(held > 0, 'the victim had connections handed to it');
    assert.ok(result.failed <= held, `${result.failed} failed, more than the ${held} connections the victim held`);
    assert.deepEqual(result.statuses[502] ?? 0, 0);
    for (const e of result.errors) assert.match(e, /ECONNRESET|socket hang up|EPIPE/);
    assert.ok(afterRecovery > 0, 'the load reconnected and was handed to the processes that live');
  } finally {
    await stopClean(hf);
  }
});

test('a process that ignores SIGTERM and holds a request forever is gone after drain_timeout plus the grace period', async () => {
  const hf = await Holdfast.start(fixtureApp('ignores-sigterm'), ['--drain-timeout', '1']);
  const pid = [...hf.appPids][0]!;
  const hanging = get(hf.url('/hang')).catch((e: Error) => e);
  await waitFor('the request to be in flight', async () => (await hf.status()).groups[0]!.processes[0]!.sessions === 1, 5000);
  const t0 = Date.now();
  const { code, leftover } = await hf.stop();
  const elapsed = Date.now() - t0;
  assert.equal(code, 0);
  assert.deepEqual(leftover, []);
  assert.ok(!pidAlive(pid));
  // drain_timeout 1 s + 5 s grace between SIGTERM and SIGKILL, with slack for a busy machine.
  assert.ok(elapsed < 12_000, `took ${elapsed} ms`);
  assert.ok(hf.lines.some((l) => /SIGTERM, ignoring/.test(l.msg)), 'it was asked nicely first');
  await hanging;
});
