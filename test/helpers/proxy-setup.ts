// A proxy on 127.0.0.1:0 in front of real upstream servers and a FakeSessionSource, torn down as a unit.

import type { RequestListener } from 'node:http';
import { join } from 'node:path';
import { createProxy, type Proxy, type ProxyOptions } from '../../src/proxy/server';
import { silentLogger } from '../../src/log/logger';
import { FakeSessionSource, socketDir, startUpstream, type Upstream } from './proxy-fakes';

export interface ProxyRig {
  proxy: Proxy;
  port: number;
  sessions: FakeSessionSource;
  upstreams: Upstream[];
  done: Array<{ statusCode: number; durationMs: number; pid: number | null }>;
  dir: string;
  close(): Promise<void>;
}

export interface RigOptions extends Partial<Omit<ProxyOptions, 'sessions'>> {
  /** One handler per upstream process; each gets pid 1001, 1002, ... */
  upstreams: RequestListener[];
  /** 'unix' (default) or 'tcp' targets. */
  transport?: 'unix' | 'tcp';
  /** The session source offers tryAcquire (the real group's synchronous route). */
  synchronous?: boolean;
}

export async function startRig(options: RigOptions): Promise<ProxyRig> {
  const { dir, remove } = socketDir();
  const upstreams: Upstream[] = [];
  for (const [i, handler] of options.upstreams.entries()) {
    upstreams.push(await startUpstream(handler, options.transport === 'tcp' ? undefined : join(dir, `app-${i}.sock`)));
  }
  const sessions = new FakeSessionSource(upstreams.map((u, i) => ({ pid: 1001 + i, target: u.target })));
  sessions.synchronous = options.synchronous ?? false;
  const done: ProxyRig['done'] = [];
  const { upstreams: _handlers, transport: _transport, synchronous: _synchronous, ...proxyOptions } = options;
  void _handlers;
  void _transport;
  void _synchronous;
  const proxy = createProxy({
    environment: 'production',
    logger: silentLogger(),
    onRequestDone: (info) => done.push(info),
    ...proxyOptions,
    sessions,
  });
  const { port } = await proxy.listen(0, '127.0.0.1');
  return {
    proxy,
    port,
    sessions,
    upstreams,
    done,
    dir,
    close: async () => {
      await proxy.close(1_000);
      await Promise.all(upstreams.map((u) => u.close()));
      remove();
    },
  };
}
