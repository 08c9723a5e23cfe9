// Prometheus metrics of a real holdfast: over the admin socket with the read-only token (what
// `curl --unix-socket ... -H "Authorization: Bearer $(cat read_token)" http://holdfast/metrics`
// does), and on the token-less metrics_address listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { AppDir } from '../helpers/apps';
import { Holdfast, get, runCli, waitFor, stopClean } from '../helpers/holdfast';
import { parsePrometheusText, samplesOf, valueOf, type Family } from '../helpers/prometheus';

interface Answer {
  status: number;
  type: string | undefined;
  body: string;
}

function instanceFile(hf: Holdfast): { socket_path: string; metrics_url?: string | null; status_url?: string | null } {
  return JSON.parse(readFileSync(join(hf.registryDir, hf.name, 'instance.json'), 'utf8')) as { socket_path: string };
}

function token(hf: Holdfast, which: 'read_token' | 'admin_token'): string {
  return readFileSync(join(hf.registryDir, hf.name, which), 'utf8').trim();
}

function overSocket(socketPath: string, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method: 'GET', headers: { host: 'holdfast', ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

async function scrape(hf: Holdfast): Promise<Map<string, Family>> {
  const r = await overSocket(instanceFile(hf).socket_path, '/metrics', { authorization: `Bearer ${token(hf, 'read_token')}` });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.type, 'text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheusText(r.body);
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });
}

test('the admin API serves valid Prometheus text to the read-only token, and 401 without it', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--min-instances', '2']);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    const socket = instanceFile(hf).socket_path;
    assert.equal((await overSocket(socket, '/metrics')).status, 401);
    assert.equal((await overSocket(socket, '/metrics', { authorization: 'Bearer not-the-token' })).status, 401);
    assert.equal((await overSocket(socket, '/metrics', { authorization: `Bearer ${token(hf, 'admin_token')}` })).status, 200, 'the admin token may read too');

    const before = await scrape(hf);
    const types = Object.fromEntries([...before.values()].map((f) => [f.name, f.type]));
    assert.equal(types['holdfast_requests_total'], 'counter');
    assert.equal(types['holdfast_request_duration_seconds'], 'histogram');
    assert.equal(types['holdfast_requests_in_queue'], 'gauge');
    assert.equal(types['holdfast_processes'], 'gauge');
    assert.equal(types['holdfast_spawns_total'], 'counter');
    assert.equal(types['holdfast_spawn_errors_total'], 'counter');
    assert.equal(types['holdfast_restarts_total'], 'counter');
    assert.equal(types['holdfast_resisting_deployment_error'], 'gauge');
    assert.equal(types['holdfast_process_resident_memory_bytes'], 'gauge');
    assert.equal(types['holdfast_process_cpu_ratio'], 'gauge');

    assert.equal(valueOf(before, 'holdfast_processes', { app: hf.name, state: 'enabled', generation: '1' }), 2);
    assert.equal(valueOf(before, 'holdfast_spawns_total', { app: hf.name, cause: 'start' }), 2);
    assert.equal(valueOf(before, 'holdfast_resisting_deployment_error', { app: hf.name }), 0);
    // Memory and CPU are sampled every few seconds; the first sample comes a little after start.
    const pids = (await hf.status()).groups[0]!.processes.map((p) => String(p.pid));
    const rssOf = (m: Map<string, Family>, pid: string) => valueOf(m, 'holdfast_process_resident_memory_bytes', { app: hf.name, pid, generation: '1' });
    const sampled = await waitFor('memory samples', async () => {
      const m = await scrape(hf);
      return pids.every((pid) => rssOf(m, pid)! > 1024 * 1024) && m;
    });
    for (const pid of pids) assert.ok(valueOf(sampled, 'holdfast_process_cpu_ratio', { app: hf.name, pid, generation: '1' })! >= 0);

    const ok = valueOf(before, 'holdfast_requests_total', { status_class: '2xx' })!;
    for (let i = 0; i < 25; i++) assert.equal((await get(hf.url('/'))).status, 200);
    const after = await scrape(hf);
    assert.equal(valueOf(after, 'holdfast_requests_total', { status_class: '2xx' }), ok + 25);
    assert.equal(valueOf(after, 'holdfast_request_duration_seconds_count')! - valueOf(before, 'holdfast_request_duration_seconds_count')!, 25);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('the resisting flag is 1 after a broken rolling restart and 0 after holdfast resume', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--min-instances', '2', '--rolling-restarts', '--resist-deployment-errors']);
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    assert.equal(valueOf(await scrape(hf), 'holdfast_resisting_deployment_error', { app: hf.name }), 0);

    app.deploy('syntax-error', 'v2');
    const r = await hf.cli(['restart']);
    assert.notEqual(r.code, 0, 'the broken restart exits non-zero');
    const resisting = await scrape(hf);
    assert.equal(valueOf(resisting, 'holdfast_resisting_deployment_error', { app: hf.name }), 1);
    assert.equal(valueOf(resisting, 'holdfast_restarts_total', { app: hf.name, kind: 'rolling', outcome: 'resisted' }), 1);
    assert.ok(valueOf(resisting, 'holdfast_spawn_errors_total', { app: hf.name, category: 'exited' })! >= 1);
    assert.equal(valueOf(resisting, 'holdfast_processes', { app: hf.name, state: 'enabled', generation: '1' }), 2, 'the old processes serve on');

    assert.equal((await hf.cli(['resume'])).code, 0);
    const resumed = await scrape(hf);
    assert.equal(valueOf(resumed, 'holdfast_resisting_deployment_error', { app: hf.name }), 0);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});

test('metrics_address serves GET /metrics without a token and nothing else, and closes with holdfast', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--metrics-address', '127.0.0.1:0']);
  let port = 0;
  try {
    const url = instanceFile(hf).metrics_url;
    assert.match(url ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    port = Number(new URL(url!).port);
    assert.ok(hf.lines.some((l) => l.metrics_url === url), 'the log says where the metrics are');
    await get(hf.url('/'));
    const r = await get(url!);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const m = parsePrometheusText(r.body);
    assert.ok(valueOf(m, 'holdfast_requests_total', { status_class: '2xx' })! >= 1);
    assert.equal(samplesOf(m, 'holdfast_info').length, 1);
    assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 404);
    assert.equal((await get(`http://127.0.0.1:${port}/status`)).status, 404, 'no status (error output) on the token-less listener');
    assert.equal(instanceFile(hf).status_url ?? null, null);
  } finally {
    await stopClean(hf);
    app.remove();
  }
  assert.ok(await refused(port), 'the metrics port is closed');
});

test('a metrics_address already in use stops start with one line naming it, and leaves nothing running', async () => {
  const app = new AppDir('good', 'v1');
  const blocker = http.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const taken = (blocker.address() as { port: number }).port;
  try {
    const r = await runCli(
      ['start', app.dir, '--port', '0', '--address', '127.0.0.1', '--name', `m${process.pid}`, '--metrics-address', `127.0.0.1:${taken}`],
      { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: join(app.dir, 'registry') },
    );
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `holdfast: cannot listen on metrics_address 127.0.0.1:${taken}: the address is already in use\n`);
    const pids = [...r.stdout.matchAll(/"app_pid":(\d+)/g)].map((m) => Number(m[1]));
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'no app process is left');
  } finally {
    await new Promise((r) => blocker.close(r));
    app.remove();
  }
});
