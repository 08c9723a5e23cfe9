import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HoldfastError } from '../../../src/errors';
import { WSGI_LOADER_PATH, WSGI_SOCKET_ENV, resolveWsgiStartupFile, wsgiLaunch } from '../../../src/spawn/wsgi-app';

function withDir(files: string[], fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'hf-wsgi-unit-'));
  for (const f of files) writeFileSync(join(dir, f), '');
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the loader ships where wsgi-app.ts points, from the compiled tree', () => {
  assert.ok(existsSync(WSGI_LOADER_PATH), WSGI_LOADER_PATH);
});

test('a WSGI process is the interpreter running the loader on the startup file, with the socket in its environment', () => {
  withDir(['passenger_wsgi.py', 'main.py'], (dir) => {
    const launch = wsgiLaunch({ appDir: dir, python: '/srv/venv/bin/python', env: { A: '1' }, socketPath: '/tmp/x/1.sock' });
    assert.equal(launch.command, '/srv/venv/bin/python');
    assert.deepEqual(launch.args, [WSGI_LOADER_PATH, join(dir, 'passenger_wsgi.py')]);
    assert.equal(launch.env['A'], '1');
    assert.equal(launch.env[WSGI_SOCKET_ENV], '/tmp/x/1.sock');
    assert.equal(launch.env['PYTHONUNBUFFERED'], '1');
    assert.equal(launch.description, `/srv/venv/bin/python wsgi_loader.py ${join(dir, 'passenger_wsgi.py')}`);
    assert.deepEqual(wsgiLaunch({ appDir: dir, startupFile: 'main.py', python: 'python3', env: {}, socketPath: '/s' }).args, [WSGI_LOADER_PATH, join(dir, 'main.py')]);
  });
});

test('a missing startup file is one HF_APP_DIR line naming it and the dir', () => {
  withDir([], (dir) => {
    assert.throws(
      () => resolveWsgiStartupFile(dir),
      (e: unknown) => e instanceof HoldfastError && e.code === 'HF_APP_DIR' && e.message === `no WSGI startup file passenger_wsgi.py in ${dir}: a WSGI app needs a Python file exposing \`application\``,
    );
  });
});
