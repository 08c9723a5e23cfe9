// What PM2 and Passenger users type: `holdfast start ecosystem.config.js` runs the app with the
// mapped options; Passenger's flags are taken where they mean the same and explained where not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Holdfast, get, stopClean, waitFor } from '../../helpers/holdfast';
import { appRan, makeApp, runHoldfast } from './run-cli';

const SERVER = `const http = require('node:http');
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid, greeting: process.env.GREETING, node_options: process.env.NODE_OPTIONS ?? null, heap_mb: Math.round(require('node:v8').getHeapStatistics().heap_size_limit / 1048576), argv: process.argv.slice(2) }));
}).listen(Number(process.env.PORT) || 3000);
`;

function pm2Project(app: object): { root: string; file: string } {
  const root = mkdtempSync(join(tmpdir(), 'hf-pm2-'));
  mkdirSync(join(root, 'api'));
  writeFileSync(join(root, 'api', 'server.js'), SERVER);
  const file = join(root, 'ecosystem.config.js');
  writeFileSync(file, `module.exports = { apps: [${JSON.stringify(app)}] };\n`);
  return { root, file };
}

test('holdfast start ecosystem.config.js runs its app with the PM2 options mapped, and names what it cannot honour', { timeout: 90_000 }, async () => {
  const { root, file } = pm2Project({
    name: 'api',
    script: 'server.js',
    cwd: './api',
    instances: 2,
    exec_mode: 'cluster',
    env: { GREETING: 'hello' },
    env_production: { GREETING: 'hello from production' },
    max_memory_restart: '200M',
    kill_timeout: 2000,
    listen_timeout: 20000,
    node_args: '--max-old-space-size=96',
    autorestart: true,
  });
  const hf = await Holdfast.start(file);
  try {
    const status = await hf.status();
    await waitFor('both instances', async () => (await hf.status()).groups[0]!.processes.filter((p) => p.state === 'enabled').length === 2, 30_000);
    assert.equal(status.max_pool_size, 2, 'instances: 2 is the pool size');
    const seen = new Map<number, { greeting: string; node_options: string; heap_mb: number }>();
    for (let i = 0; i < 10; i++) {
      const body = JSON.parse((await get(hf.url('/'))).body) as { pid: number; greeting: string; node_options: string; heap_mb: number };
      seen.set(body.pid, body);
    }
    const one = [...seen.values()][0]!;
    assert.equal(one.greeting, 'hello from production', 'env_production over env');
    assert.equal(one.node_options, '--max-old-space-size=96');
    assert.ok(one.heap_mb <= 200, `node_args reached node (heap limit ${one.heap_mb} MB)`);
    const notice = hf.lines.find((l) => l['event'] === 'config_warning' && /autorestart is not used/.test(l.msg));
    assert.ok(notice, 'a one-line notice for the key holdfast does not honour');
    assert.equal(notice.level, 'warn');
  } finally {
    await stopClean(hf);
    rmSync(root, { recursive: true, force: true });
  }
});

test('--config ecosystem.config.js with args runs the script with its arguments', { timeout: 60_000 }, async () => {
  const { root, file } = pm2Project({ script: 'server.js', cwd: 'api', args: ['--color', 'blue'] });
  const hf = await Holdfast.start(join(root, 'api'), ['--config', file]);
  try {
    const body = JSON.parse((await get(hf.url('/'))).body) as { argv: string[] };
    assert.deepEqual(body.argv, ['--color', 'blue']);
  } finally {
    await stopClean(hf);
    rmSync(root, { recursive: true, force: true });
  }
});

test("Passenger's flags that holdfast does not support get the Passengerfile's explanation, not a bare unknown option", () => {
  const dir = makeApp();
  const r = runHoldfast(['start', dir, '--user', 'nobody', '--ssl', '--nginx-bin', '/usr/sbin/nginx']);
  assert.equal(r.status, 1);
  assert.deepEqual(r.stderr.split('\n').filter(Boolean), [
    'holdfast: holdfast does not support the Passenger flag --user nobody (start holdfast as the user the app should run as)',
    'holdfast: holdfast does not support the Passenger flag --ssl (terminate TLS in a load balancer or reverse proxy in front of holdfast)',
  ]);
  assert.equal(appRan(dir), false);
  assert.doesNotMatch(r.stderr, /unknown option/);
});

test("Passenger's flags that ask for what holdfast does anyway are taken: --app-type node, --engine builtin (with a notice), --force-max-concurrent-requests-per-process", { timeout: 60_000 }, async () => {
  const dir = makeApp();
  const hf = await Holdfast.start(dir, ['--app-type', 'node', '--spawn-method', 'direct', '--engine', 'builtin', '--force-max-concurrent-requests-per-process', '3']);
  try {
    assert.equal((await get(hf.url('/'))).status, 200);
    assert.ok(hf.lines.some((l) => l['event'] === 'config_warning' && /the Passenger flag --engine has no effect in holdfast/.test(l.msg)));
  } finally {
    await stopClean(hf);
  }
  const both = runHoldfast(['start', dir, '--concurrency', '2', '--force-max-concurrent-requests-per-process', '3']);
  assert.equal(both.status, 1);
  assert.match(both.stderr, /^holdfast: give only one of --concurrency and --force-max-concurrent-requests-per-process/);
});
