// Every error code is documented in docs/error-codes.md, and every documented code exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, SpawnError, newErrorId } from '../../src/errors';
import { REPO_ROOT } from '../helpers/paths';

test('every error code is documented and every documented code exists', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs/error-codes.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/`(HF_[A-Z_]+)`/g)].map((m) => m[1]));
  for (const code of Object.keys(ERROR_CODES)) assert.ok(documented.has(code), `${code} is not in docs/error-codes.md`);
  for (const code of documented) assert.ok(code! in ERROR_CODES, `docs/error-codes.md names ${code}, which does not exist`);
});

test('a spawn error takes its code from its category', () => {
  const base = { errorId: 'abcd1234', command: 'node app.js', exitCode: 1, signal: null, outputTail: [], release: '/app', generation: 1, at: 0 };
  assert.equal(new SpawnError('x', { ...base, category: 'timeout' }).code, 'HF_SPAWN_TIMEOUT');
  assert.equal(new SpawnError('x', { ...base, category: 'exited' }).code, 'HF_SPAWN_EXITED');
  assert.equal(new SpawnError('x', { ...base, category: 'os' }).code, 'HF_SPAWN_OS');
});

test('error ids are eight hex characters', () => {
  for (let i = 0; i < 100; i++) assert.match(newErrorId(), /^[0-9a-f]{8}$/);
});
