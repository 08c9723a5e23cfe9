// The bundled example: an ordinary Node app that knows nothing about holdfast.
const http = require('node:http');

const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(`Hello from holdfast! (process ${process.pid})\n`);
});

server.listen(process.env.PORT || 8080, () => {
  console.log(`example app listening (pid ${process.pid})`);
});
