import { composeObservers } from '../../../src/supervisor/observers';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../../../src/admin/metrics';
import type { AppProcess } from '../../../src/core/app-process';
import type { PoolSnapshot } from '../../../src/core/snapshots';
import { SpawnError } from '../../../src/errors';
import { parsePrometheusText, samplesOf, valueOf } from '../../helpers/prometheus';
import { groupSnapshot, poolSnapshot, processSnapshot, resistingGroup, restartingGroup } from '../../helpers/status-fixtures';

function metricsOver(snapshot: () => PoolSnapshot) {
  return createMetrics({ snapshot, version: '0.1.0', instance: 'shop' });
}

const someProcess = {} as AppProcess;
const exit = { code: 0, signal: null };

test('counts requests by status class and observes their duration in seconds', async () => {
  const metrics = metricsOver(() => poolSnapshot());
  for (const [statusCode, durationMs] of [[200, 3], [204, 40], [302, 1], [404, 2], [499, 9000], [503, 700]] as const) {
    metrics.requestDone({ statusCode, durationMs, pid: 1 });
  }
  const m = parsePrometheusText(await metrics.text());
  assert.equal(m.get('holdfast_requests_total')?.type, 'counter');
  assert.deepEqual(
    Object.fromEntries(samplesOf(m, 'holdfast_requests_total').map((s) => [s.labels['status_class'], s.value])),
    { '1xx': 0, '2xx': 2, '3xx': 1, '4xx': 2, '5xx': 1 },
  );
  assert.equal(await metrics.requestsTotal(), 6);
  assert.equal(m.get('holdfast_request_duration_seconds')?.type, 'histogram');
  assert.equal(valueOf(m, 'holdfast_request_duration_seconds_count'), 6);
  assert.equal(valueOf(m, 'holdfast_request_duration_seconds_bucket', { le: '0.005' }), 3);
  assert.equal(valueOf(m, 'holdfast_request_duration_seconds_bucket', { le: '5' }), 5);
  assert.ok(Math.abs(valueOf(m, 'holdfast_request_duration_seconds_sum')! - 9.746) < 1e-9);
});

test('requests app processes counted on handed-off connections join the counter and the histogram, fetched fresh before a scrape', async () => {
  let flushes = 0;
  const metrics = createMetrics({
    snapshot: () => poolSnapshot(),
    version: '0.1.0',
    instance: 'shop',
    flush: async () => {
      flushes++;
      // What a process reports when asked: 3 answers, 2 quick 2xx and one slow 5xx.
      metrics.handedOffRequests({ status: [0, 2, 0, 0, 1], buckets: [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], sum: 5.004, count: 3 });
    },
  });
  metrics.requestDone({ statusCode: 200, durationMs: 3, pid: 1 });
  const m = parsePrometheusText(await metrics.text());
  assert.equal(flushes, 1);
  assert.equal(valueOf(m, 'holdfast_requests_total', { status_class: '2xx' }), 3);
  assert.equal(valueOf(m, 'holdfast_requests_total', { status_class: '5xx' }), 1);
  assert.equal(valueOf(m, 'holdfast_request_duration_seconds_count'), 4);
  assert.equal(valueOf(m, 'holdfast_request_duration_seconds_bucket', { le: '0.005' }), 3);
  assert.equal(valueOf(m, 'holdfast_request_duration_seconds_bucket', { le: '5' }), 3);
  assert.equal(valueOf(m, 'holdfast_request_duration_seconds_bucket', { le: '10' }), 4);
  assert.equal(valueOf(m, 'holdfast_request_duration_seconds_bucket', { le: '+Inf' }), 4);
  assert.ok(Math.abs(valueOf(m, 'holdfast_request_duration_seconds_sum')! - 5.007) < 1e-9);
  assert.equal(await metrics.requestsTotal(), 7, 'asked again: 3 more');
});

test('counts spawns, spawn errors, restarts and process exits from the group observer, composed with the others', async () => {
  const metrics = metricsOver(() => poolSnapshot());
  const seen: string[] = [];
  const observer = composeObservers(metrics.observe('shop'), {
    spawned: () => seen.push('spawned'),
    spawnFailed: () => seen.push('spawnFailed'),
    restartFinished: () => seen.push('restartFinished'),
    processStopped: () => seen.push('processStopped'),
    processDied: () => seen.push('processDied'),
    resistingSet: () => seen.push('resistingSet'),
  });
  observer.spawned?.(someProcess, { cause: 'start', durationMs: 10 });
  observer.spawned?.(someProcess, { cause: 'start', durationMs: 10 });
  observer.spawned?.(someProcess, { cause: 'restart', durationMs: 10 });
  const error = new SpawnError('exited', {
    category: 'exited', errorId: 'abcd1234', command: 'node app.js', exitCode: 1, signal: null, outputTail: [], release: '/srv/shop', generation: 2, at: 0,
  });
  observer.spawnFailed?.(error, { cause: 'restart', resisting: true });
  observer.resistingSet?.(error);
  observer.restartFinished?.({ outcome: 'resisted', kind: 'rolling', generation: 2, replaced: 0, total: 2, error: null });
  observer.processStopped?.(someProcess, 'memory_limit', exit);
  observer.processDied?.(someProcess, { code: null, signal: 'SIGKILL' });
  assert.deepEqual(seen, ['spawned', 'spawned', 'spawned', 'spawnFailed', 'resistingSet', 'restartFinished', 'processStopped', 'processDied']);

  const m = parsePrometheusText(await metrics.text());
  assert.equal(valueOf(m, 'holdfast_spawns_total', { app: 'shop', cause: 'start' }), 2);
  assert.equal(valueOf(m, 'holdfast_spawns_total', { app: 'shop', cause: 'restart' }), 1);
  assert.equal(valueOf(m, 'holdfast_spawns_total', { app: 'shop', cause: 'demand' }), 0, 'known causes start at 0, so rate() works');
  assert.equal(valueOf(m, 'holdfast_spawn_errors_total', { app: 'shop', category: 'exited' }), 1);
  assert.equal(valueOf(m, 'holdfast_spawn_errors_total', { app: 'shop', category: 'timeout' }), 0);
  assert.equal(valueOf(m, 'holdfast_restarts_total', { app: 'shop', kind: 'rolling', outcome: 'resisted' }), 1);
  assert.equal(valueOf(m, 'holdfast_restarts_total', { app: 'shop', kind: 'rolling', outcome: 'succeeded' }), 0);
  assert.equal(valueOf(m, 'holdfast_process_exits_total', { app: 'shop', reason: 'memory_limit' }), 1);
  assert.equal(valueOf(m, 'holdfast_process_exits_total', { app: 'shop', reason: 'died' }), 1);
});

test('reads gauges from one snapshot per scrape: processes by state and generation, queue, memory, CPU, restart progress', async () => {
  let snapshot = poolSnapshot([{ ...restartingGroup(), requests_in_queue: 3 }]);
  const metrics = metricsOver(() => snapshot);
  let m = parsePrometheusText(await metrics.text());
  const app = '/srv/shop/current';
  assert.equal(valueOf(m, 'holdfast_processes', { app, state: 'enabled', generation: '4' }), 2);
  assert.equal(valueOf(m, 'holdfast_processes', { app, state: 'draining', generation: '3' }), 1);
  assert.equal(valueOf(m, 'holdfast_spawning_processes', { app }), 1);
  assert.equal(valueOf(m, 'holdfast_requests_in_queue', { app }), 3);
  assert.equal(valueOf(m, 'holdfast_restart_in_progress', { app }), 1);
  assert.equal(valueOf(m, 'holdfast_restart_replaced_processes', { app }), 2);
  assert.equal(valueOf(m, 'holdfast_restart_processes_to_replace', { app }), 3);
  assert.equal(valueOf(m, 'holdfast_process_resident_memory_bytes', { app, pid: '4201', generation: '4' }), 52 * 1024 * 1024);
  assert.equal(valueOf(m, 'holdfast_process_cpu_ratio', { app, pid: '4201', generation: '4' }), 0.024);
  assert.equal(valueOf(m, 'holdfast_process_start_time_seconds', { app, pid: '4201', generation: '4' }), Date.parse('2026-03-01T10:57:55.000Z') / 1000);
  assert.equal(valueOf(m, 'holdfast_max_pool_size'), 6);
  assert.equal(valueOf(m, 'holdfast_info', { version: '0.1.0', name: 'shop' }), 1);

  // The next scrape sees the next snapshot; series of processes that are gone are gone.
  snapshot = poolSnapshot([groupSnapshot({ processes: [processSnapshot({ pid: 4301, generation: 4 })], generation: 4 })]);
  m = parsePrometheusText(await metrics.text());
  assert.deepEqual(samplesOf(m, 'holdfast_process_resident_memory_bytes').map((s) => s.labels['pid']), ['4301']);
  assert.equal(valueOf(m, 'holdfast_processes', { app, state: 'draining', generation: '3' }), undefined);
  assert.equal(valueOf(m, 'holdfast_processes', { app, state: 'draining', generation: '4' }), 0, 'zero-filled for the serving generation');
  assert.equal(valueOf(m, 'holdfast_restart_in_progress', { app }), 0);
});

test('the resisting-deployment-error gauge is 1 while the group resists and 0 otherwise', async () => {
  let resisting = true;
  const metrics = metricsOver(() => poolSnapshot([resisting ? resistingGroup() : groupSnapshot()]));
  assert.equal(valueOf(parsePrometheusText(await metrics.text()), 'holdfast_resisting_deployment_error', { app: '/srv/shop/current' }), 1);
  resisting = false;
  assert.equal(valueOf(parsePrometheusText(await metrics.text()), 'holdfast_resisting_deployment_error', { app: '/srv/shop/current' }), 0);
});

test('every family follows the naming conventions: holdfast_ prefix, _total counters, base units', async () => {
  const metrics = metricsOver(() => poolSnapshot([restartingGroup()]));
  metrics.observe('shop');
  metrics.requestDone({ statusCode: 200, durationMs: 1, pid: 1 });
  const m = parsePrometheusText(await metrics.text());
  for (const family of m.values()) {
    assert.match(family.name, /^holdfast_[a-z_]+$/);
    assert.ok(family.help && family.help.length > 10, `${family.name} has a HELP`);
    assert.equal(family.type === 'counter', family.name.endsWith('_total'), `${family.name}: only counters end in _total`);
    assert.doesNotMatch(family.name, /_(percent|milliseconds|ms|megabytes|mb)\b/, `${family.name} uses base units`);
  }
  assert.equal(metrics.contentType, 'text/plain; version=0.0.4; charset=utf-8');
});

test('two metrics objects never share a registry', async () => {
  const a = metricsOver(() => poolSnapshot());
  const b = metricsOver(() => poolSnapshot());
  a.requestDone({ statusCode: 200, durationMs: 1, pid: 1 });
  assert.equal(valueOf(parsePrometheusText(await b.text()), 'holdfast_requests_total', { status_class: '2xx' }), 0);
});

// The parser the integration tests rely on must itself refuse what Prometheus would refuse.
const BAD: Array<[string, string, RegExp]> = [
  ['a sample with no TYPE', 'x_total 1\n', /belongs to no declared family/],
  ['a bad label escape', '# TYPE x gauge\nx{a="\\q"} 1\n', /bad escape/],
  ['an unterminated label value', '# TYPE x gauge\nx{a="b} 1\n', /unterminated|expected/],
  ['a value that is no number', '# TYPE x gauge\nx 1,5\n', /not a number/],
  ['a duplicate series', '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n', /duplicate series/],
  ['split families', '# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a="2"} 1\n', /not together/],
  ['a TYPE after samples', '# TYPE x gauge\nx 1\n# TYPE x gauge\n', /after its samples/],
  ['a negative counter', '# TYPE x_total counter\nx_total -1\n', /counter must be >= 0/],
  ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /no \+Inf bucket/],
  ['a histogram whose count disagrees', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', /_count 3 differs/],
  ['buckets that are not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not cumulative/],
  ['no final newline', '# TYPE x gauge\nx 1', /end with a newline/],
];

for (const [what, text, error] of BAD) {
  test(`the test parser of the exposition format rejects ${what}`, () => {
    assert.throws(() => parsePrometheusText(text), error);
  });
}

test('the test parser reads escaped label values, trailing commas, timestamps and special values', () => {
  const m = parsePrometheusText('# HELP x A \\\\ help\\nline.\n# TYPE x gauge\nx{a="q\\"uo\\\\te\\nd",b="2",} +Inf 1700000000000\nx{a="n"} NaN\n');
  assert.equal(m.get('x')?.help, 'A \\ help\nline.');
  assert.deepEqual(m.get('x')?.samples[0], { name: 'x', labels: { a: 'q"uo\\te\nd', b: '2' }, value: Infinity });
  assert.ok(Number.isNaN(m.get('x')!.samples[1]!.value));
});
