// WebSocket (Upgrade) connections through the proxy to the websocket-echo fixture app.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { UpstreamTarget } from '../../../src/core/process-handle';
import { CapacityError } from '../../../src/errors';
import { createProxy, type Proxy } from '../../../src/proxy/server';
import { silentLogger } from '../../../src/log/logger';
import { pidAlive } from '../../helpers/holdfast';
import { eventually, FakeSessionSource, socketDir } from '../../helpers/proxy-fakes';
import { fixtureApp } from '../../helpers/paths';

interface EchoApp {
  child: ChildProcess;
  target: UpstreamTarget;
  stop(): Promise<void>;
}

/** Starts the fixture app with PORT set to a Unix socket path or 0 (tcp), as holdfast would. */
async function startEchoApp(port: string): Promise<EchoApp> {
  const child = spawn(process.execPath, ['app.js'], { cwd: fixtureApp('websocket-echo'), env: { ...process.env, PORT: port }, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.setEncoding('utf8');
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      output += chunk;
      const m = /listening on (.+), pid/.exec(output);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`websocket-echo exited with ${code}: ${output}`)));
  });
  const target: UpstreamTarget = line.startsWith('/')
    ? { kind: 'unix', socketPath: line }
    : { kind: 'tcp', host: '127.0.0.1', port: Number(line.slice(line.lastIndexOf(':') + 1)) };
  return {
    child,
    target,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      assert.ok(!pidAlive(child.pid!), `websocket-echo pid ${child.pid} is gone`);
    },
  };
}

interface WsRig {
  app: EchoApp;
  sessions: FakeSessionSource;
  proxy: Proxy;
  port: number;
  close(): Promise<void>;
}

async function startWsRig(transport: 'unix' | 'tcp', proxyOptions: { requestTimeoutMs?: number; headersTimeoutMs?: number; keepAliveTimeoutMs?: number } = {}): Promise<WsRig> {
  const { dir, remove } = socketDir();
  const app = await startEchoApp(transport === 'unix' ? join(dir, 'echo.sock') : '0');
  const sessions = new FakeSessionSource([{ pid: app.child.pid!, target: app.target }]);
  const proxy = createProxy({ sessions, environment: 'production', logger: silentLogger(), ...proxyOptions });
  const { port } = await proxy.listen(0, '127.0.0.1');
  return {
    app,
    sessions,
    proxy,
    port,
    close: async () => {
      await proxy.close(500);
      await app.stop();
      remove();
    },
  };
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: Buffer, isBinary: boolean) => resolve({ data, isBinary })));
}

async function openSocket(port: number): Promise<{ ws: WebSocket; requestId: string | undefined }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, { headers: { 'x-request-id': 'ws-42' } });
  let requestId: string | undefined;
  ws.once('upgrade', (res) => (requestId = res.headers['x-request-id'] as string | undefined));
  await once(ws, 'open');
  return { ws, requestId };
}

for (const transport of ['unix', 'tcp'] as const) {
  test(`a WebSocket echoes text and binary through the proxy to a ${transport} target; closing it closes the session`, async () => {
    const rig = await startWsRig(transport);
    try {
      const { ws, requestId } = await openSocket(rig.port);
      assert.equal(requestId, 'ws-42');
      assert.equal(rig.proxy.inFlight(), 1);
      assert.equal(rig.sessions.open(), 1);

      let reply = nextMessage(ws);
      ws.send('hello through the proxy');
      assert.deepEqual(await reply, { data: Buffer.from('hello through the proxy'), isBinary: false });

      const big = Buffer.alloc(200_000, 7);
      reply = nextMessage(ws);
      ws.send(big);
      const echoed = await reply;
      assert.ok(echoed.isBinary);
      assert.ok(echoed.data.equals(big));

      ws.close(1000, 'bye');
      const [code] = (await once(ws, 'close')) as [number];
      assert.equal(code, 1000);
      await rig.sessions.closedCount(1);
      assert.deepEqual(rig.sessions.closed, [{ pid: rig.app.child.pid!, unreachable: false }]);
      await eventually(() => rig.proxy.inFlight() === 0, 2_000, 'the upgrade to be over');
    } finally {
      await rig.close();
    }
  });
}

test('when the app process dies, the visitor WebSocket is closed and the session too', async () => {
  const rig = await startWsRig('unix');
  try {
    const { ws } = await openSocket(rig.port);
    const closed = once(ws, 'close');
    rig.app.child.kill('SIGKILL');
    await closed;
    await rig.sessions.closedCount(1);
    assert.equal(rig.sessions.open(), 0);
  } finally {
    await rig.close();
  }
});

test('an idle WebSocket outlives the visitor request and keep-alive timeouts', async () => {
  const rig = await startWsRig('unix', { requestTimeoutMs: 400, headersTimeoutMs: 200, keepAliveTimeoutMs: 200 });
  try {
    const { ws } = await openSocket(rig.port);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const reply = nextMessage(ws);
    ws.send('still here');
    assert.equal((await reply).data.toString(), 'still here');
    ws.close();
    await once(ws, 'close');
  } finally {
    await rig.close();
  }
});

test('an upgrade the app declines is answered with the app status and the connection closed', async () => {
  const rig = await startWsRig('unix');
  try {
    const socket = net.connect(rig.port, '127.0.0.1');
    await once(socket, 'connect');
    // Upgrade to something that is not websocket: the fixture answers 400.
    socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'close');
    const answer = Buffer.concat(chunks).toString();
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /\r\nConnection: close\r\n/i);
    await rig.sessions.closedCount(1);
  } finally {
    await rig.close();
  }
});

test('an upgrade that finds no process gets the error page; one to a dead process is retried elsewhere', async () => {
  const rig = await startWsRig('unix');
  try {
    rig.sessions.failWith = [new CapacityError('HF_QUEUE_FULL', 'full')];
    const refused = new WebSocket(`ws://127.0.0.1:${rig.port}/`);
    refused.on('error', () => undefined); // terminate() below reports the unfinished handshake
    const [, res] = (await once(refused, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['retry-after'], '5');
    res.resume();
    refused.terminate();

    const { dir, remove } = socketDir();
    rig.sessions.processes = [{ pid: 999_999, target: { kind: 'unix', socketPath: join(dir, 'dead.sock') } }, ...rig.sessions.processes];
    const { ws } = await openSocket(rig.port);
    const reply = nextMessage(ws);
    ws.send('retried');
    assert.equal((await reply).data.toString(), 'retried');
    assert.deepEqual(rig.sessions.closed[0], { pid: 999_999, unreachable: true });
    ws.close();
    await once(ws, 'close');
    remove();
  } finally {
    await rig.close();
  }
});
