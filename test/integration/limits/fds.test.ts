// At the common `ulimit -n 1024`, a flood of idle connections never takes the descriptors holdfast
// needs: at the connection cap the oldest idle ones are closed to make room, so a normal visitor
// and `holdfast status` are served within a second, and the log says the cap was reached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connectAdmin } from '../../../src/admin/client';
import { get, waitFor } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';
import { launch } from './launch';

const IDLE = 3_000;

/**
 * Opens `count` connections at once; resolves when each has connected or failed and holdfast has
 * taken them all in (no more of them closed for 300 ms), bounded in time.
 */
async function openIdle(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  let closed = 0;
  await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        sockets.push(s);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, 20_000);
        s.once('connect', done);
        s.once('error', done);
        s.once('close', () => {
          closed++;
          done();
        });
      }),
    ),
  );
  let last = -1;
  await waitFor('the flood to be taken in', () => {
    if (closed === last) return true;
    last = closed;
    return false;
  }, 20_000, 300);
  return sockets;
}

for (const path of ['proxy', 'hand-off'] as const) {
  test(`under ulimit -n 1024, 3,000 idle connections at once leave a normal request and status served within 1 s, and the cap is logged (${path} path)`, async () => {
    const hf = await launch(fixtureApp('hello'), path === 'proxy' ? ['--no-connection-handoff'] : [], { prefix: ['prlimit', '--nofile=1024:1024', '--'] });
    let sockets: net.Socket[] = [];
    try {
      const capLine = await waitFor('the connection cap line', () => hf.lines.find((l) => l.event === 'connection_cap'));
      assert.equal(capLine.nofile, 1024);
      assert.ok((capLine.max_connections as number) < 1024 / 2);
      sockets = await openIdle(hf.port, IDLE);
      await waitFor('the cap to be logged', () => hf.lines.find((l) => l.event === 'connection_cap_reached'), 10_000);
      assert.equal(hf.lines.filter((l) => l.event === 'connection_cap_reached').length, 1, 'logged once');

      let started = Date.now();
      const reply = await get(hf.url('/'));
      const requestMs = Date.now() - started;
      assert.equal(reply.status, 200);
      assert.ok(requestMs < 1000, `a normal request took ${requestMs} ms`);

      started = Date.now();
      const client = await connectAdmin({ name: hf.name, registryDir: hf.registryDir, access: 'read', timeoutMs: 5_000 });
      const doc = await client.status();
      const statusMs = Date.now() - started;
      assert.ok(doc.groups[0]!.processes.length > 0);
      assert.ok(statusMs < 1000, `status took ${statusMs} ms`);
      const cli = await hf.cli(['status', '--json']);
      assert.equal(cli.code, 0, cli.stderr);
      assert.equal(hf.child.exitCode, null, 'holdfast still runs');
      assert.doesNotMatch(hf.stderr(), /EMFILE/);
    } finally {
      for (const s of sockets) s.destroy();
      const { code, leftover } = await hf.stop();
      assert.equal(code, 0);
      assert.deepEqual(leftover, []);
    }
  });
}
