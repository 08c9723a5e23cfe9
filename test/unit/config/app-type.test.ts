import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APP_TYPE_ALIASES, defaultConcurrency, detectAppType, parseAppType, startupFileMismatch, usesPreloader } from '../../../src/config/app-type';
import { load, makeAppDir, problems } from './config-fixture';

test('app types are detected as Passenger detects them: app_start_command, app_type, startup_file, config.ru, passenger_wsgi.py, else Node', () => {
  const rack = makeAppDir({});
  writeFileSync(join(rack, 'config.ru'), 'run ->(e) { [200, {}, []] }');
  writeFileSync(join(rack, 'app.js'), '');
  assert.deepEqual(detectAppType({ appDir: rack }), { type: 'rack', reason: 'config.ru found' });
  assert.equal(detectAppType({ appDir: rack, appStartCommand: 'puma' }).type, 'generic');
  assert.equal(detectAppType({ appDir: rack, appType: 'nodejs' }).type, 'node');
  assert.equal(detectAppType({ appDir: rack, startupFile: 'server.js' }).type, 'node');
  const wsgi = makeAppDir({});
  writeFileSync(join(wsgi, 'passenger_wsgi.py'), 'application = None');
  assert.deepEqual(detectAppType({ appDir: wsgi }), { type: 'wsgi', reason: 'passenger_wsgi.py found' });
  assert.equal(detectAppType({ appDir: makeAppDir({}) }).type, 'node');
});

test("Passenger's spellings of app_type are accepted", () => {
  assert.deepEqual(
    Object.keys(APP_TYPE_ALIASES).map((k) => [k, parseAppType(k)]),
    [['node', 'node'], ['nodejs', 'node'], ['rack', 'rack'], ['ruby', 'rack'], ['wsgi', 'wsgi'], ['python', 'wsgi'], ['generic', 'generic']],
  );
  assert.equal(parseAppType('php'), undefined);
});

test('Rack and WSGI processes serve one request at a time by default, Node and generic ones are unlimited; only Rack is smart-spawned', () => {
  assert.deepEqual((['node', 'rack', 'wsgi', 'generic'] as const).map(defaultConcurrency), [0, 1, 1, 0]);
  assert.equal(usesPreloader('rack', 'smart'), true);
  assert.equal(usesPreloader('rack', 'direct'), false);
  assert.equal(usesPreloader('wsgi', 'smart'), false);
});

test('a startup_file of another language than the app type is a one-line hint; one whose extension says nothing passes', () => {
  assert.equal(
    startupFileMismatch('node', 'config.ru'),
    'startup_file "config.ru" is a Rack (Ruby) file, but the app type is "node" (it would be run by node): set app_type "rack", or a Node startup_file',
  );
  assert.match(startupFileMismatch('rack', 'app.py')!, /WSGI \(Python\) file, but the app type is "rack" \(it would be run by ruby\)/);
  assert.equal(startupFileMismatch('node', 'bin/www'), undefined);
  assert.equal(startupFileMismatch('rack', 'config.ru'), undefined);
});

test('the config carries the detected type, its concurrency default unless concurrency is given, and the interpreters', () => {
  const dir = makeAppDir({ 'holdfast.json': { app_type: 'ruby', ruby: '/opt/ruby/bin/ruby' } });
  writeFileSync(join(dir, 'config.ru'), '');
  const c = load(dir);
  assert.equal(c.appType, 'rack');
  assert.equal(c.concurrency, 1);
  assert.equal(c.ruby, '/opt/ruby/bin/ruby');
  assert.equal(c.spawnMethod, 'smart');
  assert.equal(load(dir, { concurrency: '4', spawnMethod: 'direct' }).concurrency, 4);
  assert.equal(load(dir, { spawnMethod: 'direct' }).spawnMethod, 'direct');
});

test('config refuses a startup_file that does not fit the app type, a generic app_type without a command, and unknown app types', () => {
  const dir = makeAppDir({ 'holdfast.json': { app_type: 'node', startup_file: 'config.ru' } });
  writeFileSync(join(dir, 'config.ru'), '');
  assert.deepEqual(problems(dir), [
    `${join(dir, 'holdfast.json')}: startup_file "config.ru" is a Rack (Ruby) file, but the app type is "node" (it would be run by node): set app_type "rack", or a Node startup_file`,
  ]);
  const generic = makeAppDir({ 'holdfast.json': { app_type: 'generic' } });
  assert.match(problems(generic)[0]!, /app_type \("generic", from .*holdfast\.json\) needs app_start_command/);
  const php = makeAppDir({ 'holdfast.json': { app_type: 'php' } });
  assert.match(problems(php)[0]!, /app_type must be one of "node", "nodejs", "rack", "ruby", "wsgi", "python", "generic" \(got "php"\)/);
});
