// Benchmark app "hello": the smallest useful response, so that what a front (holdfast, nginx)
// spends per request dominates. Plain Node, no dependencies; listens on $PORT (holdfast's hook
// redirects listen() to its private socket anyway).
//
//   GET  /        "hello world\n" (12 bytes)
//   GET  /big     BENCH_BIG_BYTES (default 8 MiB) streamed in 64 KiB chunks with back-pressure
//   POST /upload  reads the whole body, answers its length: for memory under large request bodies
'use strict';
const http = require('node:http');

const HELLO = Buffer.from('hello world\n');
const BIG_BYTES = Number(process.env.BENCH_BIG_BYTES) || 8 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

function sendBig(res) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG_BYTES });
  let left = BIG_BYTES;
  let gone = false;
  res.on('close', () => (gone = true));
  const pump = () => {
    while (left > 0 && !gone) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    if (!gone) res.end();
  };
  pump();
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/upload') {
    let received = 0;
    req.on('data', (chunk) => (received += chunk.length));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`${received}\n`);
    });
    return;
  }
  if (req.url === '/big') {
    sendBig(res);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': HELLO.length });
  res.end(HELLO);
});

server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT) || 3000, '127.0.0.1');
