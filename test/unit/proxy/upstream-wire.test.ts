// The upstream client's bare connection (a libuv handle without net.Socket) against real servers:
// writes made while connecting, completion callbacks, back-pressure and drain, EOF, failures with
// Node's error codes, and close.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { lookup } from 'node:dns/promises';
import { UpstreamWire, type WireEvents } from '../../../src/proxy/upstream-wire';
import type { UpstreamTarget } from '../../../src/core/process-handle';

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
  wireDrained(): void {
    this.drained++;
  }
  wireClosed(): void {
    this.#closed();
  }
}

/**
 * A server that hands each accepted socket to `onSocket` (`accepted`: the first one), closed with its
 * sockets after the test.
 */
async function server(t: TestContext, onSocket: (socket: net.Socket) => void, unixPath?: string, host = '127.0.0.1'): Promise<{ target: UpstreamTarget; accepted: Promise<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  let first: (socket: net.Socket) => void;
  const accepted = new Promise<net.Socket>((resolve) => (first = resolve));
  const srv = net.createServer((socket) => {
    first(socket);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  if (unixPath !== undefined) srv.listen(unixPath);
  else srv.listen(0, host);
  await once(srv, 'listening');
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => srv.close(resolve));
  });
  if (unixPath !== undefined) return { target: { kind: 'unix', socketPath: unixPath }, accepted };
  return { target: { kind: 'tcp', host, port: (srv.address() as net.AddressInfo).port }, accepted };
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
  const app = await server(t, () => undefined);
  const recorder = new Recorder();
  const wire = new UpstreamWire(app.target, recorder, 5_000, () => assert.fail('connect timed out'));
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
  const dir = mkdtempSync(join(tmpdir(), 'hf-wire-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const app = await server(t, (socket) => socket.end('bye'), join(dir, 'app.sock'));
  const recorder = new Recorder();
  const wire = new UpstreamWire(app.target, recorder, 5_000, () => assert.fail('connect timed out'));
  while (recorder.ended === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  wire.close();
  await recorder.closed;
  assert.deepEqual(recorder.errors, []);
});

test('a host name is looked up before connecting', async (t) => {
  // Listening where the name points on this machine (127.0.0.1 or ::1).
  const { address } = await lookup('localhost');
  const app = await server(t, () => undefined, undefined, address);
  const recorder = new Recorder();
  const wire = new UpstreamWire({ kind: 'tcp', host: 'localhost', port: (app.target as { port: number }).port }, recorder, 5_000, () => assert.fail('connect timed out'));
  wire.write('ping');
  assert.equal((await received(await app.accepted, 4)).toString(), 'ping');
  wire.close();
  await recorder.closed;
});

test('nobody listening: the failure has the code and message Node gives (connect ECONNREFUSED address), queued writes never run', async (t) => {
  const app = await server(t, () => undefined);
  const port = (app.target as { port: number }).port;
  // Take the port away: a closed port refuses.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const freePort = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  assert.notEqual(freePort, port);
  const recorder = new Recorder();
  const wire = new UpstreamWire({ kind: 'tcp', host: '127.0.0.1', port: freePort }, recorder, 5_000, () => assert.fail('connect timed out'));
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
  const dir = mkdtempSync(join(tmpdir(), 'hf-wire-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const recorder = new Recorder();
  const wire = new UpstreamWire({ kind: 'unix', socketPath: join(dir, 'nobody.sock') }, recorder, 5_000, () => assert.fail('connect timed out'));
  wire.write('lost');
  const error = (await recorder.failure()) as NodeJS.ErrnoException;
  assert.equal(error.code, 'ENOENT');
  wire.close();
  await recorder.closed;
});

/** A connected wire to an app that does not read (its socket paused). */
async function stalledApp(t: TestContext): Promise<{ wire: UpstreamWire; recorder: Recorder; socket: net.Socket }> {
  const app = await server(t, (socket) => socket.pause());
  const recorder = new Recorder();
  const wire = new UpstreamWire(app.target, recorder, 5_000, () => assert.fail('connect timed out'));
  const socket = await app.accepted;
  while (wire.connecting) await new Promise((resolve) => setTimeout(resolve, 5));
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
  while (recorder.drained === 0) await new Promise((resolve) => setTimeout(resolve, 5));
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
