// The log's own rules: errors as short objects with their HF_ code, no stack for expected ones,
// snake_case keys; and the terminal's human-readable form of the same lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { HoldfastError, SpawnError } from '../../../src/errors';
import { serializeError, withErrorCode } from '../../../src/log/fields';
import { prettyDestination } from '../../../src/log/pretty';

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text };
}

function logger(stream: NodeJS.WritableStream | pino.DestinationStream): pino.Logger {
  return pino(
    { base: { pid: 7 }, formatters: { level: (label) => ({ level: label }) }, serializers: { err: serializeError }, hooks: { logMethod: withErrorCode } },
    stream as pino.DestinationStream,
  );
}

test('an expected error is logged as its type, code and message, without a stack', () => {
  const out = sink();
  const listen = new HoldfastError('HF_LISTEN', 'cannot listen on 127.0.0.1:80: permission denied', { cause: Object.assign(new Error('listen EACCES'), { code: 'EACCES' }) });
  logger(out.stream).error({ err: listen, event: 'start_failed' }, 'holdfast could not start');
  const line = JSON.parse(out.text()) as Record<string, unknown>;
  assert.deepEqual(line['err'], { type: 'HoldfastError', code: 'HF_LISTEN', message: listen.message, cause: 'listen EACCES' });
  assert.equal(line['code'], 'HF_LISTEN', 'the line carries the code of its error');
});

test('an unexpected error keeps its stack, snake_cased own properties, and gets HF_INTERNAL', () => {
  const out = sink();
  const err = Object.assign(new Error('boom'), { errorCount: 2 });
  logger(out.stream).error({ err, event: 'x' }, 'it broke');
  const line = JSON.parse(out.text()) as { code: string; err: Record<string, unknown> };
  assert.equal(line.code, 'HF_INTERNAL');
  assert.match(String(line.err['stack']), /Error: boom\n\s+at /);
  assert.equal(line.err['error_count'], 2);
  assert.ok(!('errorCount' in line.err));
});

test('a spawn error carries its error id; an error line without err still gets a code; info lines are left alone', () => {
  const out = sink();
  const log = logger(out.stream);
  const spawn = new SpawnError('exited', { category: 'exited', errorId: 'ab12cd34', command: 'node app.js', exitCode: 1, signal: null, outputTail: ['x'], release: '/a', generation: 2, at: 0 });
  log.error({ err: spawn, event: 'spawn_error' }, 'spawn error');
  log.error('bare');
  log.info({ event: 'serving', code: undefined }, 'fine');
  const [a, b, c] = out.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(a!['err'], { type: 'SpawnError', code: 'HF_SPAWN_EXITED', message: 'exited', error_id: 'ab12cd34' });
  assert.equal(a!['code'], 'HF_SPAWN_EXITED');
  assert.equal(b!['code'], 'HF_INTERNAL');
  assert.ok(!('code' in c!));
});

test('on a terminal a line reads as time, level, app pid and message; an expected error stays on one line', () => {
  const out = sink();
  const log = logger(prettyDestination({ destination: out.stream, colorize: false }));
  log.info({ app_pid: 4242, generation: 1, event: 'process_ready' }, 'app process 4242 ready');
  log.error({ err: new HoldfastError('HF_LISTEN', 'cannot listen on 127.0.0.1:3000: in use'), event: 'start_failed' }, 'holdfast could not start');
  const lines = out.text().trim().split('\n');
  assert.equal(lines.length, 2, out.text());
  assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\] INFO: \[app 4242\] app process 4242 ready \{"generation":1\}$/);
  assert.match(lines[1]!, /^\[\d\d:\d\d:\d\d\] ERROR: holdfast could not start: cannot listen on 127\.0\.0\.1:3000: in use \(HF_LISTEN\)$/);
});
