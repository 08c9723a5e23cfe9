// `holdfast status --watch` against a real holdfast: plain repeated frames into a pipe, and a
// picture drawn over itself on a terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { watchStatus } from '../../src/cli/status';
import { AppDir } from '../helpers/apps';
import { Holdfast, pidAlive, waitFor, stopClean } from '../helpers/holdfast';
import { CLI } from '../helpers/paths';

test('status --watch into a pipe writes one full picture per second until it is stopped', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir);
  const watch = spawn(process.execPath, [CLI, 'status', '--watch', '--name', hf.name], { env: hf.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => watch.once('exit', (code, signal) => r({ code, signal })));
  let out = '';
  watch.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  try {
    const started = Date.now();
    await waitFor('two frames', () => (out.match(/^Version : /gm) ?? []).length >= 2, 10_000);
    assert.ok(Date.now() - started >= 900, 'a second between frames');
    const frames = out.split(/\n(?=Version : )/);
    for (const frame of frames.slice(0, 2)) {
      assert.match(frame, new RegExp(`^Version : .*\\nDate    : .*\\nInstance: ${hf.name} \\(pid ${hf.child.pid}`));
      assert.match(frame, /\* PID: \d+ +Gen: 1 +State: (enabled|probation)/);
    }
    assert.doesNotMatch(out, /\x1b\[/, 'no terminal escapes into a pipe');
  } finally {
    watch.kill('SIGTERM');
    const { code } = await exited;
    assert.equal(code, 0, 'SIGTERM (like Ctrl-C) ends it cleanly');
    assert.equal(pidAlive(watch.pid!), false);
    await stopClean(hf);
    app.remove();
  }
});

test('status --watch on a terminal redraws from the top left, fits the screen, and shows the cursor again at the end', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir);
  const ac = new AbortController();
  const writes: string[] = [];
  const io = {
    registryDir: hf.registryDir,
    stdout: { isTTY: true, rows: 12, columns: 50, write: (s: string) => writes.push(s) },
    stderr: { write: () => undefined },
  };
  try {
    const running = watchStatus({ name: hf.name, interval: '0.2' }, io, ac.signal);
    await waitFor('three frames', () => writes.filter((w) => w.startsWith('\x1b[H')).length >= 3, 10_000);
    ac.abort();
    await running;
    assert.equal(writes[0], '\x1b[?25l', 'the cursor is hidden while drawing');
    assert.equal(writes[writes.length - 1], '\x1b[?25h', 'and shown again');
    const frame = writes[1]!;
    assert.match(frame, /^\x1b\[HEvery 0\.2s: holdfast status --name /);
    assert.match(frame, /\nVersion : /);
    assert.ok(frame.endsWith('\x1b[J'), 'what an earlier, longer frame left below is erased');
    const lines = frame.replace(/\x1b\[J$/, '').replace(/\n$/, '').split('\n');
    assert.ok(lines.length <= 11, `fits 12 rows (got ${lines.length})`);
    for (const line of lines) {
      assert.ok(line.endsWith('\x1b[K'), 'each line erases the rest of its row');
      assert.ok(line.replace(/\x1b\[[HK]/g, '').length <= 50, `fits 50 columns: ${JSON.stringify(line)}`);
    }
  } finally {
    ac.abort();
    await stopClean(hf);
    app.remove();
  }
});
