import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatDuration,
  formatTime,
  renderRestartOutcome,
  renderRestartProgress,
  renderStatus,
} from '../../../src/cli/status-render';
import {
  groupSnapshot,
  poolSnapshot,
  processSnapshot,
  resistingGroup,
  restartingGroup,
  spawnErrorSnapshot,
  statusDocument,
} from '../../helpers/status-fixtures';


const RESISTING_CAPACITY = { capacity: { serving: 2, target: 2 }, rollback_release: null, note: 'two processes of the running version keep serving' };

test('status of a pool at rest shows version, date, instance, general information and every process', () => {
  const text = renderStatus(statusDocument());
  assert.equal(
    text,
    [
      'Version : 0.1.0',
      'Date    : 2026-03-01 12:00:00 UTC',
      'Instance: shop (pid 4000, 0.0.0.0:3000, up 1h 2m 10s)',
      '',
      '----------- General information -----------',
      'Max pool size : 6',
      'App groups    : 1',
      'Processes     : 2',
      'Requests in top-level queue : 0',
      '',
      '----------- Application groups -----------',
      '/srv/shop/current (production):',
      '  App root: /srv/shop/current',
      '  Generation: 3',
      '  Mode: rolling restarts, resists deployment errors',
      '  Restart: none running',
      '  Requests in queue: 0',
      '  * PID: 4101     Gen: 3    State: enabled   Sessions: 1      Processed: 1520     Uptime: 1h 2m 5s',
      '    CPU: 2%       Memory: 52M                Last used: 3s ago',
      '  * PID: 4102     Gen: 3    State: enabled   Sessions: 0      Processed: 1311     Uptime: 1h 2m 5s',
      '    CPU: 0%       Memory: 48M                Last used: 3s ago',
      '',
    ].join('\n'),
  );
  assert.doesNotMatch(text, /Resisting deployment error/);
});

test('status during a rolling restart shows how many processes were replaced and which are draining', () => {
  const text = renderStatus(statusDocument(poolSnapshot([restartingGroup()])));
  assert.match(text, /^ {2}Rolling restart: 2 of 3 replaced \(to generation 4, started 12s ago\)$/m);
  assert.match(text, /^ {2}Spawning: 1$/m);
  assert.match(text, /PID: 4103 +Gen: 3 +State: draining/);
  assert.match(text, /PID: 4202 +Gen: 4 +State: enabled/);
  assert.match(text, /Last used: never/);
});

test('status of a plain restart names it as such', () => {
  const group = groupSnapshot({ restart: { kind: 'plain', generation: 9, total: 2, replaced: 0, started_at: '2026-03-01T11:59:00.000Z', deadline_at: '2026-03-01T12:05:00.000Z' } });
  assert.match(renderStatus(statusDocument(poolSnapshot([group]))), /^ {2}Plain restart: 0 of 2 replaced \(to generation 9, started 1m 0s ago\)$/m);
});

test('status while resisting shows the flag, the error id, its time, how long, the cause, the message and the output', () => {
  const text = renderStatus(statusDocument(poolSnapshot([resistingGroup()])));
  const lines = text.split('\n');
  const flag = lines.find((l) => l.includes('Resisting deployment error'));
  assert.equal(flag, '  Resisting deployment error 3f9a2c1e since 2026-03-01 11:58:00 UTC (for 2m 0s)');
  assert.match(text, /Error id: 3f9a2c1e \(HF_SPAWN_EXITED\) at 2026-03-01 11:58:00 UTC/);
  assert.match(text, /Cause {3}: exited before it was ready \(exit code 1\)/);
  assert.match(text, /Message : the app process exited with code 1 before it was ready/);
  assert.match(text, /Release : \/srv\/shop\/releases\/20260301115900 \(generation 4\)/);
  assert.match(text, /\| SyntaxError: Unexpected token ';'/);
  assert.match(text, /\| Node\.js v20\.20\.2/);
  assert.match(text, /Last restart: resisted \(error 3f9a2c1e\), rolling, generation 4, finished 2m 0s ago/);
});

test('status shows the first and the last lines of a long captured output, and how many lines are left out', () => {
  const output = Array.from({ length: 40 }, (_, i) => `line ${i + 1}`);
  const error = spawnErrorSnapshot({ output_tail: output });
  const group = groupSnapshot({ resisting_deployment_error: { since: error.at, for_seconds: 5, error, ...RESISTING_CAPACITY } });
  const text = renderStatus(statusDocument(poolSnapshot([group])));
  const shown = text.split('\n').filter((l) => l.startsWith('      | '));
  assert.match(text, /Output \(40 lines\):/);
  assert.equal(shown.length, 15, 'as many lines as before, the first ones kept');
  assert.deepEqual(shown.slice(0, 6), ['      | line 1', '      | line 2', '      | line 3', '      | line 4', '      | line 5', '      | … 26 lines …']);
  assert.equal(shown[6], '      | line 32');
  assert.equal(shown[14], '      | line 40');
});

test("a syntax error's first output line is kept when there is one line too many (16 of 15)", () => {
  const output = ['/srv/app/config.ru:3: syntax error, unexpected end-of-input', ...Array.from({ length: 15 }, (_, i) => `\tfrom line ${i}`)];
  const error = spawnErrorSnapshot({ output_tail: output });
  const text = renderStatus(statusDocument(poolSnapshot([groupSnapshot({ resisting_deployment_error: { since: error.at, for_seconds: 5, error, ...RESISTING_CAPACITY } })])));
  assert.match(text, /\| \/srv\/app\/config\.ru:3: syntax error/);
  assert.match(text, /\| … 2 lines …$/m);
  assert.match(text, /\| \tfrom line 14$/m);
});

test('a process in probation shows the state probation, and memory not yet sampled shows as -', () => {
  const group = groupSnapshot({ processes: [processSnapshot({ in_probation: true, rss_bytes: 0, uptime_seconds: 1 })] });
  const lines = renderStatus(statusDocument(poolSnapshot([group]))).split('\n');
  assert.ok(lines.includes('  * PID: 4101     Gen: 3    State: probation Sessions: 1      Processed: 1520     Uptime: 1s'), lines.join('\n'));
  assert.ok(lines.includes('    CPU: 2%       Memory: -                  Last used: 3s ago'), lines.join('\n'));
});

test('a spawn error older than the generation now serving is labelled as past', () => {
  const error = spawnErrorSnapshot({ generation: 4, at: '2026-03-01T11:58:00.000Z' });
  const group = groupSnapshot({ generation: 5, last_spawn_error: error, processes: [processSnapshot({ generation: 5, started_at: '2026-03-01T11:59:00.000Z' })] });
  const text = renderStatus(statusDocument(poolSnapshot([group])));
  assert.match(text, /^ {2}Past spawn error \(before generation 5 started\): 3f9a2c1e at 2026-03-01 11:58:00 UTC \(2m 0s ago\)/m);
  assert.doesNotMatch(text, /Last spawn error/);
});

test('status names a spawn error caused by a signal, a timeout or the OS', () => {
  const render = (e: ReturnType<typeof spawnErrorSnapshot>) =>
    renderStatus(statusDocument(poolSnapshot([groupSnapshot({ resisting_deployment_error: { since: e.at, for_seconds: 1, error: e, ...RESISTING_CAPACITY } })])));
  assert.match(render(spawnErrorSnapshot({ exit_code: null, signal: 'SIGKILL' })), /Cause {3}: exited before it was ready \(signal SIGKILL\)/);
  assert.match(render(spawnErrorSnapshot({ category: 'timeout', exit_code: null, code: 'HF_SPAWN_TIMEOUT' })), /Cause {3}: did not become ready within start_timeout/);
  assert.match(render(spawnErrorSnapshot({ category: 'os', exit_code: null, output_tail: [] })), /Cause {3}: could not be started[\s\S]*Output {2}: \(none captured\)/);
});

test('status mentions a last spawn error in one line when the group is not resisting', () => {
  const group = groupSnapshot({ resist_deployment_errors: false, last_spawn_error: spawnErrorSnapshot() });
  const text = renderStatus(statusDocument(poolSnapshot([group])));
  assert.match(text, /Last spawn error: 3f9a2c1e at 2026-03-01 11:58:00 UTC \(2m 0s ago\): exited before it was ready \(exit code 1\): the app process/);
  assert.match(text, /Mode: rolling restarts$/m);
  assert.doesNotMatch(text, /Resisting deployment error/);
});

test('status shows the release and commit of a process when they differ from the app root', () => {
  const group = groupSnapshot({ processes: [processSnapshot({ release: '/srv/shop/releases/2', commit: '0123456789abcdef0123' })] });
  assert.match(renderStatus(statusDocument(poolSnapshot([group]))), /^ {4}Release: \/srv\/shop\/releases\/2 \(commit 0123456789ab\)$/m);
});

test('status shows the visitor connections handed off to a process, and nothing of them on the proxy path', () => {
  const group = groupSnapshot({ processes: [processSnapshot({ connections: 12 }), processSnapshot({ pid: 4102 })] });
  const lines = renderStatus(statusDocument(poolSnapshot([group]))).split('\n');
  assert.ok(lines.includes('    CPU: 2%       Memory: 52M                Last used: 3s ago                    Connections: 12'), lines.join('\n'));
  // Connections stands under Uptime, each column under the one above it.
  const first = lines.find((l) => l.includes('PID: 4101'))!;
  const second = lines.find((l) => l.includes('Connections'))!;
  assert.equal(second.indexOf('Connections'), first.indexOf('Uptime'));
  assert.equal(second.indexOf('Memory'), first.indexOf('Gen'));
  assert.equal(second.indexOf('Last used'), first.indexOf('Sessions'));
  assert.equal(lines.filter((l) => l.includes('Connections')).length, 1);
});

test('status of an instance without groups or processes says so', () => {
  const text = renderStatus(statusDocument(poolSnapshot([groupSnapshot({ processes: [] })])));
  assert.match(text, /^ {2}\(no processes\)$/m);
  assert.match(renderStatus(statusDocument(poolSnapshot([]))), /^\(none\)$/m);
});

test('status brackets an IPv6 address', () => {
  const doc = statusDocument();
  doc.instance.address = '::1';
  assert.match(renderStatus(doc), /Instance: shop \(pid 4000, \[::1\]:3000,/);
});

test('durations read like passenger-status and times are UTC', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(59.9), '59s');
  assert.equal(formatDuration(61), '1m 1s');
  assert.equal(formatDuration(3600), '1h 0m 0s');
  assert.equal(formatDuration(2 * 86400 + 3 * 3600 + 4 * 60 + 5), '2d 3h 4m');
  assert.equal(formatDuration(-5), '0s');
  assert.equal(formatTime('2026-03-01T12:00:00.123Z'), '2026-03-01 12:00:00 UTC');
  assert.equal(formatTime('not a time'), 'not a time');
});

test('restart progress reads "n of m replaced"', () => {
  assert.equal(renderRestartProgress('/srv/shop/current', { kind: 'rolling', generation: 4, total: 3, replaced: 1 }), 'Restarting /srv/shop/current: 1 of 3 replaced');
});

test('a succeeded restart is one line on stdout', () => {
  const r = renderRestartOutcome('/srv/shop/current', { outcome: 'succeeded', kind: 'rolling', generation: 4, replaced: 3, total: 3, error: null });
  assert.equal(r.ok, true);
  assert.equal(r.text, 'Restarted /srv/shop/current: 3 of 3 replaced, now generation 4 (rolling restart).\n');
});

test('a resisted restart starts with one holdfast: line and then shows the spawn error and its output', () => {
  const r = renderRestartOutcome('/srv/shop/current', { outcome: 'resisted', kind: 'rolling', generation: 4, replaced: 1, total: 3, error: spawnErrorSnapshot() });
  assert.equal(r.ok, false);
  const lines = r.text.split('\n');
  assert.equal(lines[0], 'holdfast: the rolling restart of /srv/shop/current to generation 4 was stopped by a spawn error: the app process exited with code 1 before it was ready');
  assert.match(r.text, /Outcome : resisted, 1 of 3 replaced; the previous version keeps serving/);
  assert.match(r.text, /Error id: 3f9a2c1e/);
  assert.match(r.text, /Cause {3}: exited before it was ready \(exit code 1\)/);
  assert.match(r.text, /\| SyntaxError: Unexpected token ';'/);
});

test('a failed restart without an error and a superseded restart are not ok', () => {
  const failed = renderRestartOutcome('app', { outcome: 'failed', kind: 'plain', generation: 2, replaced: 0, total: 1, error: null });
  assert.equal(failed.ok, false);
  assert.match(failed.text, /^holdfast: the plain restart of app to generation 2 failed \(no spawn error was reported\)$/m);
  const superseded = renderRestartOutcome('app', { outcome: 'superseded', kind: 'rolling', generation: 2, replaced: 1, total: 2, error: null });
  assert.equal(superseded.ok, false);
  assert.match(superseded.text, /^holdfast: the rolling restart of app to generation 2 was superseded by a newer restart/);
});
