// Temporary app dirs for config tests, removed after each test file.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError } from '../../../src/errors';
import { loadConfig } from '../../../src/config/load';
import type { HoldfastConfig } from '../../../src/config/types';

const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A fresh app dir holding `files` (path -> content; objects are written as JSON). */
export function makeAppDir(files: Record<string, string | object> = {}, name = 'app'): string {
  const root = mkdtempSync(join(tmpdir(), 'holdfast-config-'));
  made.push(root);
  const dir = join(root, name);
  mkdirSync(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  return dir;
}

export function load(dir: string, flags: Record<string, unknown> = {}): HoldfastConfig {
  return loadConfig({ appDir: dir, flags, cwd: dir });
}

/** The problems of the ConfigError that loading throws. */
export function problems(dir: string, flags: Record<string, unknown> = {}): string[] {
  try {
    load(dir, flags);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'HF_CONFIG_INVALID');
    return [...err.problems];
  }
  assert.fail('expected loading to fail');
}
