import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { load, makeAppDir, problems } from './config-fixture';

test('a dir with passenger_wsgi.py is a WSGI app serving one request at a time per process, as Passenger does', () => {
  const config = load(makeAppDir({ 'passenger_wsgi.py': '' }));
  assert.equal(config.appType, 'wsgi');
  assert.equal(config.concurrency, 1);
  assert.equal(config.python, 'python3');
});

test('passenger_wsgi.py wins over app.js, as in Passenger\'s detection order', () => {
  assert.equal(load(makeAppDir({ 'passenger_wsgi.py': '', 'app.js': '' })).appType, 'wsgi');
});

test('a concurrency that is set is kept for a WSGI app; Node apps stay unlimited by default', () => {
  assert.equal(load(makeAppDir({ 'passenger_wsgi.py': '', 'holdfast.json': { concurrency: 4 } })).concurrency, 4);
  assert.equal(load(makeAppDir({ 'passenger_wsgi.py': '' }), { concurrency: '0' }).concurrency, 0);
  const node = load(makeAppDir({ 'app.js': '' }));
  assert.deepEqual([node.appType, node.concurrency], ['node', 0]);
});

test('a startup_file ending in .py makes a WSGI app; app_start_command makes a generic one', () => {
  assert.equal(load(makeAppDir({ 'wsgi.py': '' }), { startupFile: 'wsgi.py' }).appType, 'wsgi');
  assert.equal(load(makeAppDir({ 'passenger_wsgi.py': '' }), { appStartCommand: 'gunicorn app' }).appType, 'generic');
});

test('app_type and python are honoured from holdfast.json and from Passengerfile.json', () => {
  const own = load(makeAppDir({ 'main.py': '', 'holdfast.json': { app_type: 'wsgi', startup_file: 'main.py', python: '/srv/venv/bin/python' } }));
  assert.deepEqual([own.appType, own.startupFile, own.python], ['wsgi', 'main.py', '/srv/venv/bin/python']);
  const passenger = load(makeAppDir({ 'passenger_wsgi.py': '', 'Passengerfile.json': { app_type: 'wsgi', python: 'python3.11' } }));
  assert.deepEqual([passenger.appType, passenger.python], ['wsgi', 'python3.11']);
});

test('a startup_file that does not fit the app type is refused with a hint', () => {
  const dir = makeAppDir({ 'app.js': '', 'main.py': '' });
  assert.deepEqual(problems(dir, { appType: 'wsgi', startupFile: 'app.js' }), [
    'startup_file ("app.js", from --startup-file) does not fit app_type "wsgi": a WSGI app\'s startup file is a Python file (.py) exposing `application`, passenger_wsgi.py by default',
  ]);
  assert.deepEqual(problems(dir, { appType: 'node', startupFile: 'main.py' }), [
    'startup_file ("main.py", from --startup-file) is a Python file but app_type is "node": set app_type "wsgi" for a WSGI app',
  ]);
});

test('app_type "wsgi" without passenger_wsgi.py, "generic" without app_start_command, and "wsgi" with one are refused', () => {
  const dir = makeAppDir({ 'app.js': '' });
  assert.deepEqual(problems(dir, { appType: 'wsgi' }), [
    `app_type is "wsgi" but ${dir} has no passenger_wsgi.py: add it (exposing \`application\`) or set startup_file`,
  ]);
  assert.deepEqual(problems(dir, { appType: 'generic' }), [
    'app_type ("generic", from --app-type) needs app_start_command: the shell command that starts the app on $PORT',
  ]);
  const withCommand = makeAppDir({ 'holdfast.json': { app_type: 'wsgi', app_start_command: 'gunicorn app' } });
  const file = join(withCommand, 'holdfast.json');
  assert.deepEqual(problems(withCommand), [
    `app_type ("wsgi", from ${file}) and app_start_command ("gunicorn app", from ${file}) cannot both be set: a WSGI app is started by holdfast's loader`,
  ]);
});
