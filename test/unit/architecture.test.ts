// The folders are the architecture: imports point down the layers and never up (STYLE.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { REPO_ROOT } from '../helpers/paths';

const SRC = join(REPO_ROOT, 'src');

// layer -> the layers it may import from (besides node builtins and packages)
const ALLOWED: Record<string, readonly string[]> = {
  errors: [],
  version: [],
  core: ['core', 'errors'],
  spawn: ['spawn', 'core', 'errors'],
  config: ['config', 'errors'],
  log: ['log', 'config', 'errors'],
  proxy: ['proxy', 'core', 'errors', 'log'],
  admin: ['admin', 'core', 'errors', 'log', 'config', 'version'],
  supervisor: ['supervisor', 'core', 'spawn', 'proxy', 'admin', 'config', 'log', 'errors', 'version'],
  cli: ['cli', 'admin', 'config', 'errors', 'log', 'supervisor', 'version', 'core'],
};

// core is pure logic: it must not touch the OS.
const CORE_FORBIDDEN = ['node:net', 'node:http', 'node:child_process', 'node:fs', 'node:fs/promises', 'net', 'http', 'child_process', 'fs'];

function layerOf(file: string): string {
  const rel = relative(SRC, file).replace(/\\/g, '/');
  const first = rel.split('/')[0]!;
  return first.replace(/\.ts$/, '');
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function importsOf(source: string): string[] {
  const specs: string[] = [];
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]\s*\)|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of source.matchAll(re)) specs.push((m[1] ?? m[2] ?? m[3])!);
  return specs;
}

test('every import in src points down the layers, never up', () => {
  const violations: string[] = [];
  for (const file of walk(SRC)) {
    const from = layerOf(file);
    const allowed = ALLOWED[from];
    assert.ok(allowed, `src/${relative(SRC, file)} is in an unknown layer "${from}"; add it to the architecture test`);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (from === 'core' && CORE_FORBIDDEN.includes(spec)) {
        violations.push(`src/${relative(SRC, file)} (core) imports ${spec}`);
      }
      if (!spec.startsWith('.')) continue;
      const target = layerOf(resolve(dirname(file), spec));
      if (!allowed.includes(target)) violations.push(`src/${relative(SRC, file)} (${from}) imports ${spec} (${target})`);
    }
  }
  assert.deepEqual(violations, []);
});

// core/group/ is one Group split by concern: the rest of holdfast sees it through group.ts (the
// table of contents) and inspection.ts (the snapshots), never through its parts.
const GROUP_DOORS = new Set(['group.ts', 'inspection.ts']);

test('outside core/group, only group.ts and inspection.ts of it are imported', () => {
  const groupDir = join(SRC, 'core', 'group');
  const violations: string[] = [];
  for (const file of walk(SRC)) {
    if (dirname(file) === groupDir) continue;
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      if (dirname(target) === groupDir && !GROUP_DOORS.has(`${relative(groupDir, target)}.ts`)) violations.push(`src/${relative(SRC, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('there are no barrel files in src', () => {
  const barrels = walk(SRC).filter((f) => /\/index\.ts$/.test(f));
  assert.deepEqual(barrels, []);
});
