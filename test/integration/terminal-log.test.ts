// On a terminal the log is for a person (pino-pretty); in a pipe it stays JSON lines.
// The terminal is a real pseudo-terminal made by util-linux's `script`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppDir } from '../helpers/apps';
import { CLI } from '../helpers/paths';

const SCRIPT = ['/usr/bin/script', '/bin/script'].find(existsSync);

test('on a terminal, holdfast start writes human-readable lines, not JSON', { skip: SCRIPT ? false : 'util-linux script is not installed', timeout: 60_000 }, async () => {
  const app = new AppDir('good', 'v1');
  const work = mkdtempSync(join(tmpdir(), 'hf-tty-'));
  try {
    // SIGINT after a few seconds: the Ctrl-C of a person, which stops holdfast cleanly.
    const command = `timeout -s INT 5 ${process.execPath} ${CLI} start ${app.dir} --port 0 --address 127.0.0.1 --name tty`;
    const out = await new Promise<string>((resolve) =>
      execFile(SCRIPT!, ['-qec', command, '/dev/null'], { env: { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: join(work, 'reg'), NO_COLOR: '1' }, timeout: 30_000 }, (_err, stdout) => resolve(stdout)),
    );
    const lines = out.replace(/\r/g, '').split('\n').filter(Boolean);
    assert.ok(lines.length >= 3, out);
    assert.ok(lines.every((l) => !l.startsWith('{')), `no JSON line on a terminal:\n${out}`);
    assert.match(out, /^\[\d\d:\d\d:\d\d\] INFO: holdfast \S+ serving \S+ on http:\/\/127\.0\.0\.1:\d+/m);
    assert.match(out, /INFO: \[app \d+\] app process \d+ ready/);
    assert.match(out, /INFO: stopped/);
  } finally {
    app.remove();
    rmSync(work, { recursive: true, force: true });
  }
});
