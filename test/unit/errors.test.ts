// Every error code is documented in docs/error-codes.md, and every documented code exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, SpawnError, newErrorId } from '../../src/errors';
import { REPO_ROOT } from '../helpers/paths';

test('every error code is documented and every documented code exists', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs/error-codes.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/`(HF_[A-Z_]+)`/g)].map((m) => m[1]));
  for (const code of Object.keys(ERROR_CODES)) assert.ok(documented.has(code), `${code} is not in docs/error-codes.md`);
  for (const code of documented) assert.ok(code! in ERROR_CODES, `docs/error-codes.md names ${code}, which does not exist`);
});

test('every error code is raised somewhere in src: a code nothing raises is dead and goes', () => {
  const sources = walkSources(join(REPO_ROOT, 'src')).map((f) => readFileSync(f, 'utf8')).join('\n');
  const errorsTs = readFileSync(join(REPO_ROOT, 'src/errors.ts'), 'utf8');
  const from = errorsTs.indexOf('const SPAWN_CODES');
  const spawnCodes = errorsTs.slice(from, errorsTs.indexOf('};', from));
  for (const code of Object.keys(ERROR_CODES)) {
    // Raised: constructed with it (new HoldfastError('HF_X', ...), new CapacityError('HF_X', ...)),
    // or a spawn error category maps to it.
    const raised = new RegExp(`new \\w*Error\\(\\s*'${code}'`).test(sources) || spawnCodes.includes(`'${code}'`);
    assert.ok(raised, `${code} is documented but nothing raises it`);
  }
});

function walkSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walkSources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test('a spawn error takes its code from its category', () => {
  const base = { errorId: 'abcd1234', command: 'node app.js', exitCode: 1, signal: null, outputTail: [], release: '/app', generation: 1, at: 0 };
  assert.equal(new SpawnError('x', { ...base, category: 'timeout' }).code, 'HF_SPAWN_TIMEOUT');
  assert.equal(new SpawnError('x', { ...base, category: 'exited' }).code, 'HF_SPAWN_EXITED');
  assert.equal(new SpawnError('x', { ...base, category: 'os' }).code, 'HF_SPAWN_OS');
});

test('error ids are eight hex characters', () => {
  for (let i = 0; i < 100; i++) assert.match(newErrorId(), /^[0-9a-f]{8}$/);
});
