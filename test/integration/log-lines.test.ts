// Every line holdfast logs is for machines first: valid JSON, snake_case keys, a stable snake_case
// `event`, no key twice, and an HF_ code on every error line. This test reads every line of a run
// that goes through serving, a bad request, a refused admin call, a resisted deploy, resume, a
// good deploy, tmp/restart.txt, SIGUSR1 and stop; and the one line of a start on a busy port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseJsonText } from '../../src/config/json-text';
import { AppDir } from '../helpers/apps';
import { Holdfast, get, stopClean } from '../helpers/holdfast';
import { CLI } from '../helpers/paths';

const SNAKE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;

/** Every problem of one raw log line; [] when it is as it should be. */
function lineProblems(raw: string): string[] {
  let parsed;
  try {
    parsed = parseJsonText(raw);
  } catch (err) {
    return [`not JSON (${(err as Error).message}): ${raw}`];
  }
  const problems: string[] = [];
  for (const d of parsed.duplicates) problems.push(`key "${d.parent ? `${d.parent}.` : ''}${d.key}" twice: ${raw}`);
  const line = parsed.value as Record<string, unknown>;
  const walk = (value: unknown, path: string): void => {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${path}[${i}]`));
    else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) {
        if (!SNAKE.test(k)) problems.push(`key "${path}${k}" is not snake_case: ${raw}`);
        walk(v, `${path}${k}.`);
      }
    }
  };
  walk(line, '');
  if (typeof line['event'] !== 'string' || !SNAKE.test(line['event'])) problems.push(`no snake_case event: ${raw}`);
  if ((line['level'] === 'error' || line['level'] === 'fatal') && !/^HF_[A-Z_]+$/.test(String(line['code']))) problems.push(`error line without an HF_ code: ${raw}`);
  return problems;
}

function adminGet(socketPath: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method: 'GET' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

function badRequest(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n'));
    s.on('data', () => s.end());
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

test('every log line of a run is JSON with snake_case keys, an event, no duplicate key, and an HF_ code when it is an error', { timeout: 180_000 }, async () => {
  const app = new AppDir('good', 'v1');
  mkdirSync(join(app.dir, 'tmp'));
  const hf = await Holdfast.start(app.dir, ['--log-level', 'debug', '--rolling-restarts', '--resist-deployment-errors', '--min-instances', '2']);
  const seen = () => hf.lines.map((l) => l['event']);
  try {
    assert.equal((await get(hf.url('/'))).status, 200);
    await badRequest(hf.port);
    const info = JSON.parse(readFileSync(join(hf.registryDir, hf.name, 'instance.json'), 'utf8')) as { socket_path: string };
    assert.equal(await adminGet(info.socket_path, '/status'), 401);

    app.deploy('syntax-error', 'v2');
    const resisted = await hf.cli(['restart', '--rolling']);
    assert.equal(resisted.code, 1);
    await hf.waitForLog('resisting', (l) => l['event'] === 'resisting_started');
    assert.equal((await get(hf.url('/'))).status, 200, 'the old version serves');
    assert.equal((await hf.cli(['resume'])).code, 0);

    app.deploy('good', 'v3');
    assert.equal((await hf.cli(['restart', '--rolling'])).code, 0);
    writeFileSync(join(app.dir, 'tmp', 'restart.txt'), '');
    const later = new Date(Date.now() + 5000);
    utimesSync(join(app.dir, 'tmp', 'restart.txt'), later, later);
    await hf.waitForLog('restart.txt', (l) => l['event'] === 'restart_txt_touched', 15_000);
    await hf.waitForLog('its restart', (l) => l['event'] === 'restart_finished' && l['generation'] === 4, 30_000);
    hf.child.kill('SIGUSR1');
    await hf.waitForLog('reopen', (l) => l['event'] === 'log_reopened');
    assert.equal((await hf.cli(['stop'])).code, 0);
    await hf.exited;
    for (const event of ['serving', 'process_ready', 'app_output', 'bad_request', 'admin_unauthorized', 'spawn_error', 'resisting_started', 'resisting_cleared', 'restart_started', 'restart_finished', 'process_stopped', 'stopping', 'stopped']) {
      assert.ok(seen().includes(event), `the run logged ${event}`);
    }
    assert.equal(hf.rawLines.length, hf.lines.length, 'every line was read');
    const problems = hf.rawLines.flatMap(lineProblems);
    assert.deepEqual(problems, []);
    // The error line of the failed deploy carries the code of its spawn error.
    const spawnError = hf.lines.find((l) => l['event'] === 'spawn_error')!;
    assert.equal(spawnError['code'], 'HF_SPAWN_EXITED');
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('a start on a busy port is one line with HF_LISTEN, on the terminal and in the log file, without a stack', { timeout: 60_000 }, async () => {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as net.AddressInfo).port;
  const work = mkdtempSync(join(tmpdir(), 'hf-busy-'));
  const app = new AppDir('good', 'v1');
  const logFile = join(work, 'busy.log');
  try {
    const run = (extra: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [CLI, 'start', app.dir, '--port', String(port), '--address', '127.0.0.1', '--name', 'busy', ...extra], { env: { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: join(work, 'reg') }, timeout: 30_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr }),
        ),
      );
    const expected = `holdfast: cannot listen on 127.0.0.1:${port}: the address is already in use (is another server running on this port?)`;
    const plain = await run([]);
    assert.equal(plain.code, 1);
    assert.equal(plain.stderr, `${expected}\n`);
    assert.doesNotMatch(plain.stdout, /EADDRINUSE|stack/, 'no stack trace in the log on stdout either');
    for (const l of plain.stdout.split('\n').filter(Boolean)) assert.deepEqual(lineProblems(l), []);

    const withFile = await run(['--log-file', logFile]);
    assert.equal(withFile.code, 1);
    assert.equal(withFile.stderr, `${expected}\n`);
    const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
    for (const l of lines) assert.deepEqual(lineProblems(l), []);
    const errors = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['level'] === 'error' || l['level'] === 'fatal');
    assert.equal(errors.length, 1, lines.join('\n'));
    assert.equal(errors[0]!['code'], 'HF_LISTEN');
    assert.equal(errors[0]!['event'], 'start_failed');
    assert.doesNotMatch(lines.join('\n'), /"stack"/);
  } finally {
    busy.close();
    app.remove();
    rmSync(work, { recursive: true, force: true });
  }
});
