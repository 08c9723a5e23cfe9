import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOADER_ENV as HOOK_ENV, NODE_HOOK_PATH } from '../../../src/spawn/launchers';
import { REPO_ROOT } from '../../helpers/paths';

const source = readFileSync(join(REPO_ROOT, 'src/spawn/node-hook.ts'), 'utf8');

test('the hook reads the environment variables the spawner sets', () => {
  assert.ok(source.includes(`'${HOOK_ENV.socket}'`));
  assert.ok(source.includes(`'${HOOK_ENV.handoff}'`));
});

test('the hook imports Node builtins only, since it runs inside the app', () => {
  const specs = [...source.matchAll(/require\(\s*['"]([^'"]+)['"]\s*\)|from\s*['"]([^'"]+)['"]/g)].map((m) => m[1] ?? m[2]);
  assert.ok(specs.length > 0);
  for (const spec of specs) assert.match(spec!, /^node:/, `${spec} is not a node: builtin`);
});

test('the compiled hook is CommonJS next to the spawner', () => {
  const compiled = readFileSync(NODE_HOOK_PATH, 'utf8');
  assert.match(compiled, /require\("node:net"\)/);
  assert.doesNotMatch(compiled, /^\s*import\s/m);
});
