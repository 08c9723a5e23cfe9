import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LOADER_ENV, RACK_BOOT_ERROR_MARKER, RACK_LOADER_PATH } from '../../../src/spawn/launchers';

/** loader.rb and the files it loads with require_relative. */
const LOADER_FILES = readdirSync(dirname(RACK_LOADER_PATH))
  .filter((name) => name.endsWith('.rb'))
  .map((name) => join(dirname(RACK_LOADER_PATH), name));

test('the Rack loader ships as source next to the compiled code, is valid Ruby, and spells the names holdfast reads', () => {
  const source = LOADER_FILES.map((file) => readFileSync(file, 'utf8')).join('\n');
  for (const file of LOADER_FILES) assert.match(execFileSync('ruby', ['-c', file], { encoding: 'utf8' }), /Syntax OK/, file);
  for (const name of [LOADER_ENV.socket, LOADER_ENV.rackup, LOADER_ENV.preloader, LOADER_ENV.handoff]) assert.ok(source.includes(`'${name}'`), name);
  assert.ok(source.includes(`BOOT_ERROR_MARKER = '${RACK_BOOT_ERROR_MARKER}'`));
  const relatives = [...readFileSync(RACK_LOADER_PATH, 'utf8').matchAll(/^\s*require_relative '([^']+)'/gm)].map((m) => `${m[1]}.rb`);
  assert.deepEqual(relatives.sort(), LOADER_FILES.map((f) => f.slice(dirname(f).length + 1)).filter((f) => f !== 'loader.rb').sort());
});

test('the Rack loader uses nothing but the standard library and rack', () => {
  const requires = new Set(LOADER_FILES.flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/^\s*require '([^']+)'/gm)].map((m) => m[1]!)));
  assert.deepEqual([...requires].sort(), ['bundler/setup', 'json', 'rack', 'securerandom', 'socket', 'stringio', 'tempfile']);
});
