// The fast lane's request-head parser: what it serves itself, and everything it leaves to Node's server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { parseHead } from '../../../src/proxy/fast-lane';

const socket = new Socket();
const parse = (text: string) => parseHead(socket, text, 'x-request-id');

test('a plain GET is read with its headers in order and case, host, accept and the request id picked out', () => {
  const req = parse('GET /items/1?q=a%20b HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\nX-Request-Id: abc-1\r\nX-Custom:  spaced value \t');
  assert.ok(req);
  assert.equal(req.method, 'GET');
  assert.equal(req.url, '/items/1?q=a%20b');
  assert.deepEqual(req.rawHeaders, ['Host', 'example.com', 'Accept', 'text/html', 'X-Request-Id', 'abc-1', 'X-Custom', 'spaced value']);
  assert.equal(req.headers.host, 'example.com');
  assert.equal(req.headers.accept, 'text/html');
  assert.equal(req.headers['x-request-id'], 'abc-1');
  assert.equal(req.complete, true);
  assert.equal(req.close, false);
});

test('every method without a body that the lane knows is served; Connection: close and keep-alive are understood', () => {
  for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH']) assert.equal(parse(`${method} / HTTP/1.1\r\nHost: x`)?.method, method);
  assert.equal(parse('GET / HTTP/1.1\r\nHost: x\r\nConnection: close')?.close, true);
  assert.equal(parse('GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive')?.close, false);
});

test('only a field value\'s spaces and tabs are trimmed: other bytes (latin1 NBSP) are the visitor\'s', () => {
  const req = parse('GET / HTTP/1.1\r\nHost: x\r\nX-A: \u00a0v\u00a0');
  assert.deepEqual(req?.rawHeaders.slice(2), ['X-A', '\u00a0v\u00a0']);
});

test('whatever the lane does not fully understand is left to Node\'s server (null)', () => {
  const refused: Record<string, string> = {
    'a body by length': 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3',
    'even an empty one': 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0',
    'a chunked body': 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked',
    'an upgrade': 'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket',
    'an expectation': 'PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue',
    'HTTP/1.0': 'GET / HTTP/1.0\r\nHost: x',
    'HTTP/2 preface': 'PRI * HTTP/2.0',
    'absolute-form': 'GET http://x/ HTTP/1.1\r\nHost: x',
    'asterisk-form': 'OPTIONS * HTTP/1.1\r\nHost: x',
    'CONNECT': 'CONNECT x:443 HTTP/1.1\r\nHost: x:443',
    'an unknown method': 'BREW / HTTP/1.1\r\nHost: x',
    'a lowercase method': 'get / HTTP/1.1\r\nHost: x',
    'a space in the target': 'GET /a b HTTP/1.1\r\nHost: x',
    'a non-ASCII target': 'GET /\u00e9 HTTP/1.1\r\nHost: x',
    'no Host': 'GET / HTTP/1.1\r\nAccept: */*',
    'two Hosts': 'GET / HTTP/1.1\r\nHost: a\r\nHost: b',
    'a bad header name': 'GET / HTTP/1.1\r\nHost: x\r\nBad Name: v',
    'a space before the colon': 'GET / HTTP/1.1\r\nHost : x',
    'a line without a colon': 'GET / HTTP/1.1\r\nHost: x\r\nnonsense',
    'an obsolete line fold': 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b',
    'a bare LF inside': 'GET / HTTP/1.1\r\nHost: x\nX-A: a',
    'a bare CR inside': 'GET / HTTP/1.1\r\nHost: x\rX-A: a',
    'a control character in a value': 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b',
    'Connection naming a header': 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret',
    'a leading empty line': '\r\nGET / HTTP/1.1\r\nHost: x',
    'a missing version': 'GET /',
  };
  for (const [what, text] of Object.entries(refused)) assert.equal(parse(text), null, what);
});
