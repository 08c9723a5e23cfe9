import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { hasRequestBody, requestIdFor, upstreamRequestHeaders, visitorResponseHeaders } from '../../../src/proxy/headers';

function fakeRequest(rawHeaders: string[], remoteAddress = '::ffff:198.51.100.9'): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i]!.toLowerCase()] ??= rawHeaders[i + 1]!;
  return { rawHeaders, headers, socket: { remoteAddress } } as unknown as IncomingMessage;
}

function asMap(flat: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

test('request headers for the app lose hop-by-hop ones, including those Connection lists', () => {
  const req = fakeRequest([
    'Host', 'example.test',
    'Connection', 'keep-alive, X-Hop',
    'X-Hop', '1',
    'Keep-Alive', 'timeout=5',
    'TE', 'trailers',
    'Trailer', 'X-Sum',
    'Transfer-Encoding', 'chunked',
    'Upgrade', 'websocket',
    'Proxy-Authorization', 'Basic x',
    'Proxy-Connection', 'keep-alive',
    'Proxy', 'http://evil',
    'Expect', '100-continue',
    'Cookie', 'a=1',
    'Cookie', 'b=2',
  ]);
  const out = asMap(upstreamRequestHeaders(req, { requestIdHeader: 'x-request-id', requestId: 'id-1', upgrade: false }));
  assert.deepEqual(out, [
    ['Host', 'example.test'],
    ['Cookie', 'a=1'],
    ['Cookie', 'b=2'],
    ['X-Forwarded-For', '198.51.100.9'],
    ['X-Forwarded-Proto', 'http'],
    ['X-Forwarded-Host', 'example.test'],
    ['x-request-id', 'id-1'],
  ]);
});

test('X-Forwarded-For is appended to across repeated headers; the visitor\'s request id is replaced by ours', () => {
  const req = fakeRequest(['Host', 'h', 'X-Forwarded-For', '203.0.113.1', 'x-forwarded-for', '203.0.113.2', 'X-Request-Id', 'theirs'], '127.0.0.1');
  const out = asMap(upstreamRequestHeaders(req, { requestIdHeader: 'x-request-id', requestId: 'ours', upgrade: false }));
  assert.deepEqual(out.filter(([k]) => k.toLowerCase() === 'x-forwarded-for'), [['X-Forwarded-For', '203.0.113.1, 203.0.113.2, 127.0.0.1']]);
  assert.deepEqual(out.filter(([k]) => k.toLowerCase() === 'x-request-id'), [['x-request-id', 'ours']]);
});

test('an upgrade request keeps Upgrade and says Connection: Upgrade', () => {
  const req = fakeRequest(['Host', 'h', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k']);
  const out = asMap(upstreamRequestHeaders(req, { requestIdHeader: 'x-request-id', requestId: 'r', upgrade: true }));
  assert.deepEqual(out.filter(([k]) => ['upgrade', 'connection', 'sec-websocket-key'].includes(k.toLowerCase())), [
    ['Upgrade', 'websocket'],
    ['Sec-WebSocket-Key', 'k'],
    ['Connection', 'Upgrade'],
  ]);
});

test('response headers for the visitor lose hop-by-hop ones, keep duplicates and case, and carry the request id', () => {
  const raw = ['Content-Type', 'text/plain', 'Connection', 'close, X-Internal', 'X-Internal', 'x', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'X-Request-Id', 'app-made'].map(
    (s) => Buffer.from(s, 'latin1'),
  );
  assert.deepEqual(asMap(visitorResponseHeaders(raw, 'x-request-id', 'ours')), [
    ['Content-Type', 'text/plain'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['x-request-id', 'ours'],
  ]);
});

test('a sane incoming request id is kept; anything else is replaced by a UUID', () => {
  assert.equal(requestIdFor('abc-123_x.y:z'), 'abc-123_x.y:z');
  assert.equal(requestIdFor(['first', 'second']), 'first');
  for (const bad of [undefined, '', 'has space', 'x'.repeat(129), 'semi;colon', 'quote"', 'new\nline']) {
    assert.match(requestIdFor(bad), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  }
});

test('a request has a body when it has a non-zero Content-Length or a Transfer-Encoding', () => {
  assert.equal(hasRequestBody(fakeRequest([])), false);
  assert.equal(hasRequestBody(fakeRequest(['Content-Length', '0'])), false);
  assert.equal(hasRequestBody(fakeRequest(['Content-Length', '5'])), true);
  assert.equal(hasRequestBody(fakeRequest(['Transfer-Encoding', 'chunked'])), true);
});

test('a Connection header that lists Host or other end-to-end headers strips none of them', () => {
  const req = fakeRequest([
    'Host', 'example.test',
    'Connection', 'keep-alive, Host, Content-Length, Cookie, Authorization, X-Hop',
    'Content-Length', '3',
    'Cookie', 'a=1',
    'Authorization', 'Bearer t',
    'X-Hop', '1',
  ]);
  const out = asMap(upstreamRequestHeaders(req, { requestIdHeader: 'x-request-id', requestId: 'id-1', upgrade: false }));
  const names = out.map(([n]) => n);
  for (const kept of ['Host', 'Content-Length', 'Cookie', 'Authorization']) assert.ok(names.includes(kept), `${kept} is kept`);
  assert.ok(!names.includes('X-Hop'), 'a header Connection names is still hop-by-hop');
  assert.ok(!names.includes('Connection'));
  const back = asMap(visitorResponseHeaders(['Connection', 'close, Content-Type, Set-Cookie', 'Content-Type', 'text/plain', 'Set-Cookie', 'b=2'], 'x-request-id', 'id-1'));
  assert.deepEqual(back.map(([n]) => n), ['Content-Type', 'Set-Cookie', 'x-request-id']);
});
