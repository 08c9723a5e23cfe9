// The status page listener (status_address) of a real holdfast, over HTTP: who gets in, how a
// browser's ?token= becomes a cookie, what status.json holds, and `holdfast status --page`.
// What the page shows in a browser is test/browser/status-page.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { AppDir } from '../helpers/apps';
import { Holdfast, get, stopClean } from '../helpers/holdfast';
import { parsePrometheusText, valueOf } from '../helpers/prometheus';

function tokenOf(hf: Holdfast, which: 'read_token' | 'admin_token'): string {
  return readFileSync(join(hf.registryDir, hf.name, which), 'utf8').trim();
}

function statusUrl(hf: Holdfast): string {
  const info = JSON.parse(readFileSync(join(hf.registryDir, hf.name, 'instance.json'), 'utf8')) as { status_url?: string | null };
  assert.ok(info.status_url, 'instance.json has status_url');
  return info.status_url;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });
}

test('the status page needs the read-only token; ?token= becomes an HttpOnly SameSite=Strict cookie and leaves the address', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--status-address', '127.0.0.1:0']);
  let port = 0;
  try {
    const base = statusUrl(hf);
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    port = Number(new URL(base).port);
    assert.notEqual(port, hf.port, 'never on the public port');
    const read = tokenOf(hf, 'read_token');

    const none = await get(base, { accept: 'text/html' });
    assert.equal(none.status, 401);
    assert.match(none.body, /holdfast status --page/);
    assert.equal((await get(`${base}status.json`)).status, 401);
    assert.equal((await get(`${base}metrics`)).status, 401);
    assert.equal((await get(`${base}?token=wrong`)).headers['set-cookie'], undefined);
    assert.equal((await get(`${base}status.json`, { authorization: `Bearer ${tokenOf(hf, 'admin_token')}` })).status, 401, 'the admin token never travels over TCP');

    const first = await get(`${base}?token=${read}&x=1`);
    assert.equal(first.status, 303);
    assert.equal(first.headers.location, '/?x=1');
    const cookie = first.headers['set-cookie']?.[0] ?? '';
    assert.match(cookie, new RegExp(`^holdfast-${port}=${read}; HttpOnly; SameSite=Strict; Path=/$`));

    const page = await get(base, { cookie: cookie.split(';')[0]! });
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'sha256-/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.match(page.body, /<script>/);

    await get(hf.url('/'));
    const doc = await get(`${base}status.json`, { authorization: `Bearer ${read}` });
    assert.equal(doc.status, 200);
    const status = JSON.parse(doc.body) as { instance: { name: string }; groups: Array<{ processes: unknown[] }>; requests_total: number };
    assert.equal(status.instance.name, hf.name);
    assert.equal(status.groups[0]!.processes.length, 1);
    assert.ok(status.requests_total >= 1);

    const metrics = await get(`${base}metrics`, { authorization: `Bearer ${read}` });
    assert.equal(metrics.status, 200);
    assert.ok(valueOf(parsePrometheusText(metrics.body), 'holdfast_requests_total', { status_class: '2xx' })! >= 1);
    assert.equal((await get(`${base}nope`, { authorization: `Bearer ${read}` })).status, 404);

    const cli = await hf.cli(['status', '--page']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, `${base}?token=${read}\n`);
  } finally {
    await stopClean(hf);
    app.remove();
  }
  assert.ok(await refused(port), 'the status port is closed');
});

test('holdfast status --page of an instance without a status page says how to get one', async () => {
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir);
  try {
    const r = await hf.cli(['status', '--page']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `holdfast: instance "${hf.name}" has no status page; start it with --status-address 127.0.0.1:PORT (or status_address in holdfast.json)\n`);
  } finally {
    await stopClean(hf);
    app.remove();
  }
});
