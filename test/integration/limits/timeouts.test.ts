// A connection that sends nothing, and one that sends its headers too slowly (slowloris), are closed
// after the headers timeout (30 s) on both paths, the proxy and the hand-off: not never (Node's own
// rule for a silent connection), not after up to twice that (the hand-off path before).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Holdfast, stopClean } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';

const HEADERS_TIMEOUT_MS = 30_000;

function lifetime(port: number, send: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s = net.connect(port, '127.0.0.1', () => {
      if (send) s.write(send);
    });
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error('the idle connection was never closed'));
    }, HEADERS_TIMEOUT_MS * 2 + 5_000);
    s.on('error', () => undefined);
    s.resume(); // read the 408, so that the end (and the close) is seen
    s.once('close', () => {
      clearTimeout(guard);
      resolve(Date.now() - started);
    });
  });
}

test('a silent and a slowloris connection are closed within a second or two of the 30 s headers timeout on both paths', async () => {
  const proxied = await Holdfast.start(fixtureApp('hello'), ['--no-connection-handoff']);
  const handed = await Holdfast.start(fixtureApp('hello'));
  try {
    const partial = 'GET / HTTP/1.1\r\nHost: x\r\n';
    const [ps, pp, hs, hp] = await Promise.all([lifetime(proxied.port, ''), lifetime(proxied.port, partial), lifetime(handed.port, ''), lifetime(handed.port, partial)]);
    const seen = { 'proxy, silent': ps, 'proxy, slowloris': pp, 'hand-off, silent': hs, 'hand-off, slowloris': hp };
    for (const [what, ms] of Object.entries(seen)) {
      assert.ok(ms >= HEADERS_TIMEOUT_MS - 100 && ms < HEADERS_TIMEOUT_MS + 2_500, `${what}: closed after ${ms} ms (${JSON.stringify(seen)})`);
    }
  } finally {
    await stopClean(proxied);
    await stopClean(handed);
  }
});
