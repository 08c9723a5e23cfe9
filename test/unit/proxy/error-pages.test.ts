import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CapacityError, HoldfastError, SpawnError, type SpawnErrorCategory } from '../../../src/errors';
import { errorIdOf, errorPage, escapeHtml, prefersJson } from '../../../src/proxy/error-pages';

const SECRET_PATH = '/srv/secret-app/releases/20261126';
const COMMAND = `node ${SECRET_PATH}/server.js --token=hunter2`;
const OUTPUT = ['Error: ECONNREFUSED 10.0.0.5:5432', `    at connect (${SECRET_PATH}/db.js:12:5)`, '<script>alert(1)</script>'];

function spawnError(category: SpawnErrorCategory = 'exited'): SpawnError {
  const error = new SpawnError(`app in ${SECRET_PATH} exited with code 1 before it listened`, {
    category,
    errorId: 'deadbeef',
    command: COMMAND,
    exitCode: category === 'exited' ? 1 : null,
    signal: null,
    outputTail: OUTPUT,
    release: SECRET_PATH,
    generation: 7,
    at: 0,
  });
  return error;
}

const upstreamError = (): HoldfastError =>
  new HoldfastError('HF_UPSTREAM', `app process 4242 at ${SECRET_PATH}/app.sock failed before answering: other side closed`, {
    cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
  });

const CASES: Array<{ name: string; error: () => unknown; status: number; code: string }> = [
  { name: 'a full queue', error: () => new CapacityError('HF_QUEUE_FULL', `queue of ${SECRET_PATH} full`), status: 503, code: 'HF_QUEUE_FULL' },
  { name: 'shutting down', error: () => new CapacityError('HF_SHUTTING_DOWN', 'stopping'), status: 503, code: 'HF_SHUTTING_DOWN' },
  { name: 'a queue timeout', error: () => new CapacityError('HF_QUEUE_TIMEOUT', 'waited 60 s'), status: 504, code: 'HF_QUEUE_TIMEOUT' },
  { name: 'a spawn error (exited)', error: () => spawnError('exited'), status: 503, code: 'HF_SPAWN_EXITED' },
  { name: 'a spawn error (timeout)', error: () => spawnError('timeout'), status: 503, code: 'HF_SPAWN_TIMEOUT' },
  { name: 'a spawn error (os)', error: () => spawnError('os'), status: 503, code: 'HF_SPAWN_OS' },
  { name: 'an upstream failure', error: upstreamError, status: 502, code: 'HF_UPSTREAM' },
  { name: 'a bug', error: () => new TypeError(`cannot read x of undefined at ${SECRET_PATH}`), status: 500, code: 'HF_INTERNAL' },
];

for (const c of CASES) {
  for (const format of ['html', 'json'] as const) {
    test(`${c.name} gives ${c.status} ${c.code} as ${format} in production with no internals`, () => {
      const accept = format === 'json' ? 'application/json' : 'text/html';
      const page = errorPage(c.error(), 'cafe0001', { environment: 'production', accept });
      assert.equal(page.status, c.status);
      assert.equal(page.code, c.code);
      assert.ok(page.body.includes('cafe0001'), 'the error id is on the page');
      for (const leak of [SECRET_PATH, 'secret-app', 'hunter2', 'node ', 'ECONNREFUSED', 'at connect', 'alert(1)', 'other side closed', 'exited with code', 'cannot read', 'stack']) {
        assert.ok(!page.body.includes(leak), `production page leaks ${JSON.stringify(leak)}`);
      }
      if (format === 'json') {
        assert.equal(page.headers['content-type'], 'application/json; charset=utf-8');
        const json = JSON.parse(page.body) as { error: Record<string, unknown> };
        assert.deepEqual(Object.keys(json.error).sort(), ['code', 'error_id', 'message']);
        assert.equal(json.error['code'], c.code);
        assert.equal(json.error['error_id'], 'cafe0001');
      } else {
        assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
        assert.match(page.body, /^<!DOCTYPE html>/);
      }
      assert.equal(page.headers['cache-control'], 'no-store');
      assert.equal(page.headers['retry-after'], c.code === 'HF_QUEUE_FULL' ? '5' : undefined);
    });
  }
}

test('a spawn error in development shows cause, category, exit code, command and output, HTML-escaped', () => {
  const page = errorPage(spawnError(), 'deadbeef', { environment: 'development', accept: 'text/html' });
  assert.equal(page.status, 503);
  assert.ok(page.body.includes(`app in ${SECRET_PATH} exited with code 1 before it listened`));
  assert.ok(page.body.includes('<th>Category</th><td><code>exited</code>'));
  assert.ok(page.body.includes('<th>Exit code</th><td><code>1</code>'));
  assert.ok(page.body.includes(escapeHtml(COMMAND)));
  assert.ok(page.body.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(!page.body.includes('<script>'), 'app output cannot inject markup');
  assert.ok(page.body.includes('Error: ECONNREFUSED 10.0.0.5:5432'));
});

test('a spawn error in development as JSON carries the details as fields', () => {
  const page = errorPage(spawnError(), 'deadbeef', { environment: 'development', accept: 'application/json' });
  const { error } = JSON.parse(page.body) as { error: Record<string, unknown> };
  assert.equal(error['code'], 'HF_SPAWN_EXITED');
  assert.equal(error['error_id'], 'deadbeef');
  assert.equal(error['category'], 'exited');
  assert.equal(error['exit_code'], 1);
  assert.equal(error['signal'], null);
  assert.equal(error['command'], COMMAND);
  assert.deepEqual(error['output'], OUTPUT);
  assert.match(error['cause'] as string, /exited with code 1/);
});

test('an upstream failure in development shows the cause chain with codes', () => {
  const page = errorPage(upstreamError(), 'cafe0002', { environment: 'development', accept: undefined });
  assert.equal(page.status, 502);
  assert.ok(page.body.includes('other side closed (UND_ERR_SOCKET)'));
});

test('the error id is the spawn error\'s own, else a new short one', () => {
  assert.equal(errorIdOf(spawnError()), 'deadbeef');
  assert.match(errorIdOf(new CapacityError('HF_QUEUE_FULL', 'x')), /^[0-9a-f]{8}$/);
  assert.notEqual(errorIdOf(new Error('a')), errorIdOf(new Error('a')));
});

test('JSON is chosen only when the visitor prefers it over HTML', () => {
  assert.equal(prefersJson(undefined), false);
  assert.equal(prefersJson(''), false);
  assert.equal(prefersJson('*/*'), false);
  assert.equal(prefersJson('application/json'), true);
  assert.equal(prefersJson('application/json, text/plain, */*'), true, 'axios');
  assert.equal(prefersJson('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), false, 'a browser');
  assert.equal(prefersJson('text/html;q=0.5, application/json'), true);
  assert.equal(prefersJson('application/json;q=0.4, text/html'), false);
  assert.equal(prefersJson('application/json;q=0'), false);
  assert.equal(prefersJson('application/*'), true);
  assert.equal(prefersJson('garbage;;;,,'), false);
});

test('escapeHtml escapes the five characters that matter', () => {
  assert.equal(escapeHtml(`<a href="x" onclick='y'>&</a>`), '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
});
