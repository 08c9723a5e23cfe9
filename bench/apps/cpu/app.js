// Benchmark app "cpu": ~1 ms of CPU per request (a busy loop on the monotonic clock), so that one
// process saturates one core and the figure shows how well a front spreads load over two processes.
// BENCH_CPU_MS changes the cost. Plain Node, no dependencies; listens on $PORT.
'use strict';
const http = require('node:http');

const BUSY_NS = BigInt(Math.round((Number(process.env.BENCH_CPU_MS) || 1) * 1e6));

function burn() {
  const end = process.hrtime.bigint() + BUSY_NS;
  let spins = 0;
  while (process.hrtime.bigint() < end) spins++;
  return spins;
}

const server = http.createServer((req, res) => {
  const spins = burn();
  const body = `ok ${spins}\n`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT) || 3000, '127.0.0.1');
