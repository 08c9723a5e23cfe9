// holdfast's end of the hand-off channel, over a fake child: the Rack loader's extra messages (busy,
// free, a static request given back with its bytes) and the preloader's relay, which tags each
// message with the pid of the process it is for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { ChannelRelay, HookChannel, SerialHookChannel, childEndpoint } from '../../../src/spawn/hook-channel';

class FakeChild extends EventEmitter {
  connected = true;
  readonly sent: Array<{ message: Record<string, unknown>; handle: unknown }> = [];
  send(message: Record<string, unknown>, handle: unknown, _options: unknown, callback: (error: Error | null) => void): boolean {
    this.sent.push({ message, handle });
    callback(null);
    return true;
  }
  asChild(): ChildProcess {
    return this as unknown as ChildProcess;
  }
}

const socket = (): Socket => ({}) as Socket;

test("the Node hook's channel is never busy: it has no busyNow, so scaling reads it as before", () => {
  const channel = new HookChannel(childEndpoint(new FakeChild().asChild()), () => undefined, undefined);
  assert.equal('busyNow' in channel, false);
  assert.equal('onAvailable' in channel, false);
});

test('a serial channel: closed and returned connections end once, a static request comes back with its bytes, busy lasts until free', () => {
  const child = new FakeChild();
  let ready = 0;
  const channel = new SerialHookChannel(childEndpoint(child.asChild()), () => ready++, undefined);
  assert.equal(channel.takesConnections, false);
  child.emit('message', { type: 'ready', handoff: true });
  assert.equal(ready, 1);
  assert.equal(channel.takesConnections, true);

  const outcomes: Array<[number, boolean, string | undefined]> = [];
  for (let i = 0; i < 4; i++) channel.take(socket(), (returned, replay) => outcomes.push([i, returned, replay?.toString()]));
  assert.deepEqual(child.sent.map((s) => s.message), [1, 2, 3, 4].map((id) => ({ type: 'holdfast:conn', id })));

  child.emit('message', { type: 'closed', id: 1 });
  child.emit('message', { type: 'returned', id: 2, proxy: true, data: Buffer.from('GET /logo.png HTTP/1.1\r\n').toString('base64') });
  let available = 0;
  channel.onAvailable(() => available++);
  child.emit('message', { type: 'returned', id: 3, busy: true });
  assert.equal(channel.busyNow(), true);
  child.emit('message', { type: 'closed', id: 1 }); // a repeat: nothing more happens
  child.emit('message', { type: 'free' });
  assert.equal(channel.busyNow(), false);
  assert.equal(available, 1);
  child.emit('message', { type: 'free' });
  assert.equal(available, 1, 'free without busy tells nobody');
  channel.exited();
  assert.deepEqual(outcomes, [
    [0, false, undefined],
    [1, true, 'GET /logo.png HTTP/1.1\r\n'],
    [2, true, undefined],
    [3, false, undefined],
  ]);
});

test("the preloader's relay: messages to a forked process carry its pid, and each process hears only its own", () => {
  const preloader = new FakeChild();
  const relay = new ChannelRelay(preloader.asChild());
  const a = new SerialHookChannel(relay.endpointFor(101), () => undefined, undefined, true);
  const b = new SerialHookChannel(relay.endpointFor(102), () => undefined, undefined, true);
  assert.equal(a.takesConnections, true, 'a forked process takes connections from the start');
  const ended: string[] = [];
  a.take(socket(), (returned) => ended.push(`a ${returned}`));
  b.take(socket(), (returned) => ended.push(`b ${returned}`));
  assert.deepEqual(
    preloader.sent.map((s) => s.message),
    [
      { type: 'holdfast:conn', id: 1, pid: 101 },
      { type: 'holdfast:conn', id: 1, pid: 102 },
    ],
  );
  preloader.emit('message', { type: 'returned', id: 1, pid: 102 });
  preloader.emit('message', { type: 'returned', id: 1 }); // no pid: nobody's
  preloader.emit('message', { type: 'load', elu: 0.5, pid: 101 });
  assert.deepEqual(ended, ['b true']);
  assert.equal(a.eventLoopUtilization(), 0.5);
  assert.equal(b.eventLoopUtilization(), undefined);
  a.drain();
  assert.deepEqual(preloader.sent.at(-1)!.message, { type: 'holdfast:drain', pid: 101 });
  relay.forget(102);
  let returned: boolean | undefined;
  const sent = preloader.sent.length;
  b.take(socket(), (r) => (returned = r));
  assert.equal(preloader.sent.length, sent, 'nothing is sent for it');
  assert.equal(returned, true, 'a process that has exited takes nothing: the connection goes elsewhere');
});
