import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HoldfastError } from '../../../src/errors';
import { ChildSpawner } from '../../../src/spawn/child-spawner';
import { resolveNodeEntry } from '../../../src/spawn/launchers';
import type { Watchdog } from '../../../src/spawn/watchdog';

function appDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'hf-entry-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function withApp(files: Record<string, string>, fn: (dir: string) => void): void {
  const dir = appDir(files);
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertAppDirError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HoldfastError);
    assert.equal(e.code, 'HF_APP_DIR');
    assert.match(e.message, message);
    assert.doesNotMatch(e.message, /\n/, 'one line');
    return true;
  });
}

test('uses the startup file when one is given', () => {
  withApp({ 'app.js': '', 'bin/www.js': '' }, (dir) => {
    assert.equal(resolveNodeEntry(dir, 'bin/www.js'), join(dir, 'bin/www.js'));
  });
});

test('uses package.json main when that file exists, with or without its extension', () => {
  withApp({ 'package.json': '{"main":"lib/server.js"}', 'lib/server.js': '', 'app.js': '' }, (dir) => {
    assert.equal(resolveNodeEntry(dir), join(dir, 'lib/server.js'));
  });
  withApp({ 'package.json': '{"main":"lib/server"}', 'lib/server.js': '' }, (dir) => {
    assert.equal(resolveNodeEntry(dir), join(dir, 'lib/server.js'));
  });
  withApp({ 'package.json': '{"main":"lib"}', 'lib/index.js': '' }, (dir) => {
    assert.equal(resolveNodeEntry(dir), join(dir, 'lib/index.js'));
  });
});

test('falls back to app.js, index.js, then server.js when main names no file', () => {
  withApp({ 'package.json': '{"main":"index.js"}', 'server.js': '' }, (dir) => {
    assert.equal(resolveNodeEntry(dir), join(dir, 'server.js'));
  });
  withApp({ 'index.js': '', 'server.js': '' }, (dir) => {
    assert.equal(resolveNodeEntry(dir), join(dir, 'index.js'));
  });
  withApp({ 'app.js': '', 'index.js': '', 'package.json': 'not json' }, (dir) => {
    assert.equal(resolveNodeEntry(dir), join(dir, 'app.js'));
  });
});

test('names the dir and everything it looked for when there is no entry', () => {
  withApp({ 'package.json': '{"main":"dist/main.js"}', 'README.md': '' }, (dir) => {
    assertAppDirError(() => resolveNodeEntry(dir), new RegExp(`${dir}.*package\\.json "main" \\(dist/main\\.js\\), app\\.js, index\\.js, server\\.js`));
  });
});

test('says which startup file is missing instead of guessing another', () => {
  withApp({ 'app.js': '' }, (dir) => {
    assertAppDirError(() => resolveNodeEntry(dir, 'start.js'), /startup file start\.js not found in app dir/);
  });
});

test('says so when the app dir does not exist or is a file', () => {
  assertAppDirError(() => resolveNodeEntry('/nonexistent/holdfast-app'), /app dir \/nonexistent\/holdfast-app does not exist/);
  withApp({ 'app.js': '' }, (dir) => {
    assertAppDirError(() => resolveNodeEntry(join(dir, 'app.js')), /is not a directory/);
  });
});

const noWatchdog: Watchdog = { pid: undefined, register() {}, unregister() {}, close: async () => {} };

test('describes a Node app as node and its entry, and a generic app by its start command', () => {
  withApp({ 'server.js': '' }, (dir) => {
    const base = { appDir: dir, environment: 'production', envvars: {}, startTimeoutMs: 1000, socketDir: '/tmp', watchdog: noWatchdog };
    assert.equal(new ChildSpawner(base).describeCommand(), `node ${join(dir, 'server.js')}`);
    assert.equal(new ChildSpawner({ ...base, appStartCommand: 'bundle exec puma -p $PORT' }).describeCommand(), 'bundle exec puma -p $PORT');
  });
});

test('refuses a socket dir too long for a Unix socket path', () => {
  assert.throws(
    () => new ChildSpawner({ appDir: '/srv/app', environment: 'production', envvars: {}, startTimeoutMs: 1000, socketDir: '/' + 'd'.repeat(120), watchdog: noWatchdog }),
    /too long for Unix socket paths/,
  );
});
