// Both paths give the app the same forwarded headers and request id, in headers and in rawHeaders,
// and a Connection header naming Host strips no end-to-end header.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Holdfast, stopClean } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';

interface Echo {
  headers: Record<string, string>;
  rawHeaders: string[];
}

function echo(port: number, headers: Record<string, string>): Promise<Echo> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/headers', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve(JSON.parse(body) as Echo));
    });
    req.on('error', reject);
  });
}

function rawValues(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

for (const path of ['hand-off', 'proxy'] as const) {
  test(`the app's rawHeaders carry the same X-Forwarded-For and request id as its headers, and Connection: keep-alive, Host keeps Host (${path} path)`, async () => {
    const hf = await Holdfast.start(fixtureApp('limits'), path === 'proxy' ? ['--no-connection-handoff'] : []);
    try {
      const got = await echo(hf.port, { 'X-Forwarded-For': '203.0.113.7', 'X-Request-Id': 'bad id with spaces', Connection: 'keep-alive, Host' });
      assert.equal(got.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
      assert.deepEqual(rawValues(got.rawHeaders, 'x-forwarded-for'), [got.headers['x-forwarded-for']]);
      assert.notEqual(got.headers['x-request-id'], 'bad id with spaces');
      assert.deepEqual(rawValues(got.rawHeaders, 'x-request-id'), [got.headers['x-request-id']]);
      assert.equal(got.headers.host, `127.0.0.1:${hf.port}`, 'Host is kept');
      assert.deepEqual(rawValues(got.rawHeaders, 'host'), [got.headers.host]);
      assert.deepEqual(rawValues(got.rawHeaders, 'x-forwarded-proto'), ['http']);
    } finally {
      await stopClean(hf);
    }
  });
}
