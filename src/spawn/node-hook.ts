// Preloaded into every Node app holdfast starts (`node --require node-hook.js app.js`), CommonJS
// and ESM apps alike. It must stay plain CommonJS with Node builtins only: it runs inside the app.
//
// 1. The app's FIRST listen() - whatever form it used: (port), (port, host, cb), ({port, host}),
//    (path), ... - listens on holdfast's Unix socket instead; the app's callback still runs.
// 2. It tells holdfast "ready" once that socket listens, and reports event-loop utilization.
// 3. When holdfast goes away (its end of the channel closes, even after a SIGKILL), the app exits
//    at once, so no app process outlives holdfast.
//
// Messages are newline-delimited JSON on fd 3, a socketpair holdfast created:
//   {"type":"ready"}  {"type":"load","elu":0.42}
// Every handle here is unref'd: the hook never keeps an app alive or changes when it exits.

import fs = require('node:fs');
import net = require('node:net');
import perf_hooks = require('node:perf_hooks');

const SOCKET_ENV = 'HOLDFAST_APP_SOCKET';
const CHANNEL_ENV = 'HOLDFAST_CHANNEL_FD';
const LOAD_INTERVAL_MS = 250;

function install(): void {
  const socketPath = process.env[SOCKET_ENV];
  const channelFd = Number(process.env[CHANNEL_ENV]);
  // Processes the app forks inherit execArgv (so this hook) and env: without these they do nothing.
  delete process.env[SOCKET_ENV];
  delete process.env[CHANNEL_ENV];
  if (!socketPath || !Number.isInteger(channelFd) || channelFd < 3) return;

  let redirected = false;
  const channel = new net.Socket({ fd: channelFd, readable: true, writable: true });
  channel.unref();
  const leave = (): void => {
    // process.exit() skips the server's close, which is what would remove the socket file.
    if (redirected) {
      try {
        fs.unlinkSync(socketPath);
      } catch {
        // never created, or already gone
      }
    }
    process.exit(1);
  };
  channel.on('end', leave);
  channel.on('close', leave);
  channel.on('error', leave);
  channel.on('data', () => undefined); // nothing is sent this way; reading is how EOF is seen

  const send = (message: object): void => {
    if (!channel.destroyed && channel.writable) channel.write(JSON.stringify(message) + '\n');
  };

  let previous = perf_hooks.performance.eventLoopUtilization();
  const loadTimer = setInterval(() => {
    const now = perf_hooks.performance.eventLoopUtilization();
    const delta = perf_hooks.performance.eventLoopUtilization(now, previous);
    previous = now;
    send({ type: 'load', elu: Math.round(delta.utilization * 1000) / 1000 });
  }, LOAD_INTERVAL_MS);
  loadTimer.unref();

  const originalListen = net.Server.prototype.listen;

  function listen(this: net.Server, ...args: unknown[]): net.Server {
    if (redirected) return originalListen.apply(this, args as Parameters<typeof originalListen>);
    redirected = true;
    net.Server.prototype.listen = originalListen; // later servers (admin ports, tests) are the app's own business
    const last = args[args.length - 1];
    const callback = typeof last === 'function' ? (last as () => void) : undefined;
    this.once('listening', () => send({ type: 'ready' }));
    const options = { path: socketPath! };
    return callback ? originalListen.call(this, options, callback) : originalListen.call(this, options);
  }
  net.Server.prototype.listen = listen as typeof originalListen;
}

install();
