import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { LOADER_ENV, RACK_BOOT_ERROR_MARKER, RACK_LOADER_PATH } from '../../../src/spawn/launchers';

test('the Rack loader ships as source next to the compiled code, is valid Ruby, and spells the names holdfast reads', () => {
  const source = readFileSync(RACK_LOADER_PATH, 'utf8');
  assert.match(execFileSync('ruby', ['-c', RACK_LOADER_PATH], { encoding: 'utf8' }), /Syntax OK/);
  for (const name of [LOADER_ENV.socket, LOADER_ENV.rackup, LOADER_ENV.preloader]) assert.ok(source.includes(`'${name}'`), name);
  assert.ok(source.includes(`BOOT_ERROR_MARKER = '${RACK_BOOT_ERROR_MARKER}'`));
});

test('the Rack loader uses nothing but the standard library and rack', () => {
  const requires = [...readFileSync(RACK_LOADER_PATH, 'utf8').matchAll(/^\s*require '([^']+)'/gm)].map((m) => m[1]);
  assert.deepEqual(requires.sort(), ['bundler/setup', 'rack', 'socket', 'stringio', 'tempfile']);
});
