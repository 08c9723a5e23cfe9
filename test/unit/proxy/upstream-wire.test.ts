// The upstream client's bare connection (a libuv handle without net.Socket) against real servers:
// writes made while connecting, completion callbacks, back-pressure and drain, EOF, failures with
// Node's error codes, and close.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { lookup } from 'node:dns/promises';
import { UpstreamWire, type WireEvents } from '../../../src/proxy/upstream-wire';
import { eventually, rawServer, socketDir } from '../../helpers/proxy-fakes';

/** Records what a wire reports; `closed` settles on wireClosed. */
class Recorder implements WireEvents {
  ended = 0;
  drained = 0;
  errors: Error[] = [];
  readonly closed: Promise<void>;
  #closed!: () => void;
  #failed: ((error: Error) => void) | null = null;
  constructor() {
    this.closed = new Promise((resolve) => (this.#closed = resolve));
  }
  failure(): Promise<Error> {
    return this.errors.length > 0 ? Promise.resolve(this.errors[0]!) : new Promise((resolve) => (this.#failed = resolve));
  }
  wireEnded(): void {
    this.ended++;
  }
  wireFailed(error: Error): void {
    this.errors.push(error);
    this.#failed?.(error);
  }
  wireConnectTimedOut(): void {
    assert.fail('connect timed out');
  }
  wireDrained(): void {
    this.drained++;
  }
  wireClosed(): void {
    this.#closed();
  }
}

function received(socket: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= bytes) resolve(Buffer.concat(chunks));
    });
  });
}

test('writes made while connecting go out once connected, in order, each `done` after its bytes left', async (t) => {
  const app = await rawServer(t, () => undefined, '127.0.0.1');
  const recorder = new Recorder();
  const wire = new UpstreamWire(app.target, recorder, 5_000);
  const done: string[] = [];
  assert.equal(wire.connecting, true);
  assert.equal(wire.write('abc', () => done.push('string')), false, 'queued while connecting');
  wire.write(Buffer.from('def'), () => done.push('buffer'));
  wire.write([Buffer.from('gh'), Buffer.from('ijkl')], () => done.push('buffers'));
  assert.equal((await received(await app.accepted, 12)).toString(), 'abcdefghijkl');
  assert.deepEqual(done, ['string', 'buffer', 'buffers']);
  assert.equal(wire.connecting, false);
  assert.ok(recorder.drained >= 1, 'drained once the queued writes were out');
  await new Promise<void>((resolve) => wire.flushed(resolve));
  wire.close();
  await recorder.closed;
  assert.deepEqual(recorder.errors, []);
});

test('a Unix socket, and the app closing its end: wireEnded', async (t) => {
  const app = await rawServer(t, (socket) => socket.end('bye'));
  const recorder = new Recorder();
  const wire = new UpstreamWire(app.target, recorder, 5_000);
  await eventually(() => recorder.ended > 0, 5_000, 'wireEnded');
  wire.close();
  await recorder.closed;
  assert.deepEqual(recorder.errors, []);
});

test('a host name is looked up before connecting', async (t) => {
  // Listening where the name points on this machine (127.0.0.1 or ::1).
  const { address } = await lookup('localhost');
  const app = await rawServer(t, () => undefined, address);
  const recorder = new Recorder();
  const wire = new UpstreamWire({ kind: 'tcp', host: 'localhost', port: (app.target as { port: number }).port }, recorder, 5_000);
  wire.write('ping');
  assert.equal((await received(await app.accepted, 4)).toString(), 'ping');
  wire.close();
  await recorder.closed;
});

test('nobody listening: the failure has the code and message Node gives (connect ECONNREFUSED address), queued writes never run', async () => {
  // A port just given back: nobody listens there.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const freePort = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const recorder = new Recorder();
  const wire = new UpstreamWire({ kind: 'tcp', host: '127.0.0.1', port: freePort }, recorder, 5_000);
  let written = false;
  wire.write('lost', () => (written = true));
  const error = (await recorder.failure()) as NodeJS.ErrnoException;
  assert.equal(error.code, 'ECONNREFUSED');
  assert.equal(error.syscall, 'connect');
  assert.equal(error.message, `connect ECONNREFUSED 127.0.0.1:${freePort}`);
  wire.close();
  await recorder.closed;
  assert.equal(written, false);
  assert.equal(recorder.errors.length, 1, 'one failure, reported once');
});

test('a Unix socket path with nobody behind it: ENOENT', async (t) => {
  const dir = socketDir();
  t.after(dir.remove);
  const recorder = new Recorder();
  const wire = new UpstreamWire({ kind: 'unix', socketPath: join(dir.dir, 'nobody.sock') }, recorder, 5_000);
  wire.write('lost');
  const error = (await recorder.failure()) as NodeJS.ErrnoException;
  assert.equal(error.code, 'ENOENT');
  wire.close();
  await recorder.closed;
});

/** A connected wire to an app that does not read (its socket paused). */
async function stalledApp(t: TestContext): Promise<{ wire: UpstreamWire; recorder: Recorder; socket: net.Socket }> {
  const app = await rawServer(t, (socket) => socket.pause(), '127.0.0.1');
  const recorder = new Recorder();
  const wire = new UpstreamWire(app.target, recorder, 5_000);
  const socket = await app.accepted;
  await eventually(() => !wire.connecting, 5_000, 'connected');
  return { wire, recorder, socket };
}

test('back-pressure: a write the kernel cannot take says so, wireDrained follows once the app reads, every byte arrives', async (t) => {
  const { wire, recorder, socket } = await stalledApp(t);
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  let sent = 0;
  let taken = true;
  // The app does not read: its receive buffer and our send buffer fill, and a write has to wait.
  for (let i = 0; i < 200 && taken; i++) {
    taken = wire.write(chunk);
    sent += chunk.length;
  }
  assert.equal(taken, false, 'a write was queued');
  assert.equal(recorder.drained, 0);
  const all = received(socket, sent);
  socket.resume();
  assert.equal((await all).length, sent);
  await eventually(() => recorder.drained > 0, 5_000, 'wireDrained');
  wire.close();
  await recorder.closed;
  assert.deepEqual(recorder.errors, []);
});

test('close() with writes still queued: they are dropped without a failure or their `done`, wireClosed follows', async (t) => {
  const { wire, recorder } = await stalledApp(t);
  const chunk = Buffer.alloc(1024 * 1024, 0x62);
  let queuedDone = false;
  while (wire.write(chunk));
  wire.write(chunk, () => (queuedDone = true));
  wire.close();
  await recorder.closed;
  assert.deepEqual(recorder.errors, []);
  assert.equal(queuedDone, false);
  assert.equal(wire.write('after'), false, 'nothing is written once closed');
});
