// Which request paths name a file under the static root, which are refused, which go to the app.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StaticFiles } from '../../../src/proxy/static-files';

function root(): { dir: string; files: StaticFiles; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'hf-static-unit-'));
  mkdirSync(join(dir, 'public', 'assets'), { recursive: true });
  writeFileSync(join(dir, 'public', 'a.txt'), 'a');
  writeFileSync(join(dir, 'public', 'with space.txt'), 'b');
  writeFileSync(join(dir, 'public', 'assets', 'index.html'), 'i');
  writeFileSync(join(dir, 'secret'), 's');
  symlinkSync(join(dir, 'secret'), join(dir, 'public', 'out'));
  symlinkSync(join(dir, 'public', 'a.txt'), join(dir, 'public', 'in'));
  return { dir, files: new StaticFiles({ root: join(dir, 'public'), fingerprintedCacheControl: '' }), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

test('paths that name a file under the root are served; query strings and encodings are understood', () => {
  const r = root();
  try {
    const kind = (url: string) => r.files.lookup(url);
    assert.equal(kind('/a.txt').kind, 'file');
    assert.equal(kind('/a.txt?v=3#x').kind, 'file');
    assert.equal(kind('/with%20space.txt').kind, 'file');
    assert.equal(kind('/assets/').kind, 'file', 'a directory answers its index.html');
    assert.equal(kind('/in').kind, 'file', 'a symlink that stays inside is fine');
  } finally {
    r.remove();
  }
});

test('paths that are not files go to the app', () => {
  const r = root();
  try {
    for (const url of ['/', '/users/1', '/a.txt/', '/assets', '/100%', 'http://example.com/a.txt', '*']) {
      assert.equal(r.files.lookup(url).kind, url === '/assets' ? 'file' : 'app', url);
    }
  } finally {
    r.remove();
  }
});

test('traversal in every spelling, backslashes, NUL and symlinks leaving the root are refused', () => {
  const r = root();
  try {
    const refused = ['/../secret', '/assets/../../secret', '/%2e%2e/secret', '/%2E%2e%2fsecret', '/%252e%252e/secret', '/..%5csecret', '/..%255csecret', '/a\\..\\secret', '/a.txt%00', '/a.txt%2500', '/./a.txt'];
    for (const url of refused) assert.deepEqual(r.files.lookup(url), { kind: 'refused', status: 400 }, url);
    assert.deepEqual(r.files.lookup('/out'), { kind: 'refused', status: 404 });
  } finally {
    r.remove();
  }
});

test('no root directory: everything goes to the app', () => {
  const files = new StaticFiles({ root: join(tmpdir(), 'hf-no-such-dir-' + process.pid), fingerprintedCacheControl: '' });
  assert.equal(files.lookup('/a.txt').kind, 'app');
});
