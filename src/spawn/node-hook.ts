// Preloaded into every Node app holdfast starts (`node --require node-hook.js app.js`), CommonJS
// and ESM apps alike. It must stay plain CommonJS with Node builtins only: it runs inside the app.
//
// 1. The app's FIRST listen() - whatever form it used: (port), (port, host, cb), ({port, host}),
//    (path), ... - listens on holdfast's Unix socket instead; the app's callback still runs.
// 2. It tells holdfast "ready" once that socket listens, and reports event-loop utilization.
// 3. When holdfast goes away (its end of the channel closes, even after a SIGKILL), the app exits
//    at once, so no app process outlives holdfast.
// 4. The connection hand-off (docs/performance.md): when that server is an HTTP server, holdfast
//    may send it whole visitor connections, as Node's cluster module does. The hook adds what the
//    proxy would have added (X-Forwarded-*, the request id), counts requests for holdfast's
//    scaling, max_requests and metrics, and when holdfast drains the process it gives back every
//    connection at rest between two requests - holdfast keeps its own descriptor of each
//    connection, so one given back loses nothing and goes to another process - while a request
//    that starts during the drain is answered with Connection: close.
// 5. On handed-off connections, files under static_files_dir are answered before the app's code
//    runs, by holdfast's own proxy/static-files.js, loaded by the path holdfast gives (it needs only
//    Node builtins and mime-types): the one piece of holdfast that runs inside the app.
//
// The channel is Node's IPC channel on fd 3 (JSON messages; the connection rides along with one).
//   hook -> holdfast: {type:'ready', handoff}  {type:'load', elu, peak, served, stats?}
//                     {type:'closed', id}  {type:'returned', id}  {type:'stats', ...}  {type:'limit'}
//   holdfast -> hook: {type:'holdfast:conn', id} + socket  {type:'holdfast:drain'}  {type:'holdfast:flush'}
//                     {type:'holdfast:continue'} (max_requests reached, but keep serving)
//                     {type:'holdfast:shed', keep} (a new process is up: give back connections at rest
//                     down to `keep`, so that keep-alive connections spread over the grown pool)
// At max_requests the hook stops reading new requests (connections at rest are paused) until
// holdfast answers with drain or continue, so that a process serves no more than max_requests.
// The channel is unref'd: the hook never keeps an app alive or changes when it exits.

import fs = require('node:fs');
import http = require('node:http');
import net = require('node:net');
import crypto = require('node:crypto');
import perf_hooks = require('node:perf_hooks');

const SOCKET_ENV = 'HOLDFAST_APP_SOCKET';
const HANDOFF_ENV = 'HOLDFAST_HANDOFF';
const LOAD_INTERVAL_MS = 250;
/** The line the hook writes to stderr as the process exits, naming the requests it had started; spawned-process.ts reads it. */
const IN_PROGRESS_MARKER = 'holdfast-hook: requests in progress at exit: ';
/** Ids per report line: holdfast cuts output lines at 16 KiB (output-tail.ts), and the ids in a cut-off piece would be lost. */
const IN_PROGRESS_LINE_CHARS = 8 * 1024;
const IN_PROGRESS_ID = Symbol('holdfast.inProgressId');
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/**
 * What the hook needs for the hand-off path (JSON in HOLDFAST_HANDOFF; absent = no hand-off): what
 * the proxy would otherwise have applied. The spawner imports this type (types only: nothing of
 * holdfast is loaded into the app).
 */
export interface HandoffSettings {
  /** Lowercase. */
  requestIdHeader: string;
  readinessPath: string | null;
  maxRequests: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Upper bounds (seconds) of the request duration histogram. */
  buckets: number[];
  /**
   * static_files on this path: `module` is holdfast's proxy/static-files.js, loaded by its path (the
   * proxy's own logic, Node builtins and mime-types only); null = off.
   */
  staticFiles: { module: string; root: string; fingerprintedCacheControl: string } | null;
  /** The Rack loader reads visitors' bodies itself: max_request_body_size (0 = none) and where big ones go. */
  maxRequestBodyBytes?: number;
  bufferDir?: string;
}

/** The part of proxy/static-files.ts the hook uses (it is loaded by path, so only its shape is known here). */
interface StaticFilesHandler {
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean;
}

function loadStaticFiles(s: HandoffSettings['staticFiles']): StaticFilesHandler | undefined {
  if (!s) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require(s.module) as { StaticFiles: new (settings: { root: string; fingerprintedCacheControl: string }) => StaticFilesHandler };
    return new loaded.StaticFiles({ root: s.root, fingerprintedCacheControl: s.fingerprintedCacheControl });
  } catch (error) {
    process.stderr.write(`holdfast: static files are off in this process: ${(error as Error).message}\n`);
    return undefined;
  }
}

const ID = Symbol('holdfast.connectionId');
const RETURNED = Symbol('holdfast.returned');
const SPOKE = Symbol('holdfast.spoke');
const STARTED = Symbol('holdfast.startedMs');
const PEER = Symbol('holdfast.peerAddress');
type HandedSocket = net.Socket & { [PEER]?: string; [ID]?: number; [RETURNED]?: boolean; [SPOKE]?: boolean; parser?: unknown; _httpMessage?: http.ServerResponse | null };
type TimedResponse = http.ServerResponse & { [STARTED]?: number };

function readSettings(raw: string | undefined): HandoffSettings | undefined {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as HandoffSettings;
  } catch {
    return undefined;
  }
}

function install(): void {
  const socketPath = process.env[SOCKET_ENV];
  const settings = readSettings(process.env[HANDOFF_ENV]);
  // Processes the app forks inherit execArgv (so this hook) and env: without these they do nothing.
  delete process.env[SOCKET_ENV];
  delete process.env[HANDOFF_ENV];
  const channel = process.channel;
  if (!socketPath || !channel || typeof process.send !== 'function') return;
  channel.unref();

  let redirected = false;
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
  process.on('disconnect', leave);

  const send = (message: object): void => {
    if (process.connected) process.send!(message, undefined, {}, () => undefined);
  };

  // ---- requests on handed-off connections ----
  const sockets = new Set<HandedSocket>();
  /** Connections paused at max_requests (only these are resumed: Node pauses others for back-pressure). */
  const held = new Set<HandedSocket>();
  let draining = false;
  /** At max_requests: connections pause at rest until holdfast says drain or continue. */
  let holding = false;
  /** Give back connections at rest while more than this many are open (rebalancing after a scale-up). */
  let shedTo = Infinity;
  let active = 0;
  let peak = 0;
  let served = 0;
  let limitReported = false;
  const buckets = settings?.buckets ?? [];
  const statics = loadStaticFiles(settings?.staticFiles ?? null);
  const statusCounts = [0, 0, 0, 0, 0];
  const bucketCounts = new Array<number>(buckets.length + 1).fill(0);
  let durationSum = 0;
  let counted = 0;
  let idleParsers: (() => unknown[]) | undefined;
  /** The hand-off settings once the app's server takes handed-off connections. */
  let handed: HandoffSettings | undefined;

  const takeStats = (): object | undefined => {
    if (counted === 0) return undefined;
    const stats = { status: statusCounts.slice(), buckets: bucketCounts.slice(), sum: durationSum, count: counted };
    statusCounts.fill(0);
    bucketCounts.fill(0);
    durationSum = 0;
    counted = 0;
    return stats;
  };

  let previous = perf_hooks.performance.eventLoopUtilization();
  const loadTimer = setInterval(() => {
    const now = perf_hooks.performance.eventLoopUtilization();
    const delta = perf_hooks.performance.eventLoopUtilization(now, previous);
    previous = now;
    send({ type: 'load', elu: Math.round(delta.utilization * 1000) / 1000, peak, served, stats: takeStats() });
    peak = active;
  }, LOAD_INTERVAL_MS);
  loadTimer.unref();

  /**
   * At rest between two requests: nothing of a next request read. A connection that has read
   * nothing at all yet is (Node counts it busy from the start); after that, exactly as Node's
   * closeIdleConnections() decides it (it sees a request begun even before its headers are complete).
   */
  const atRest = (socket: HandedSocket): boolean => {
    if (socket.destroyed || socket.writableEnded || socket.writableLength > 0 || !socket.parser || !idleParsers) return false;
    const message = socket._httpMessage;
    if (message && !message.writableEnded) return false;
    return socket.bytesRead === 0 || idleParsers().includes(socket.parser);
  };

  /** Closes this process's copy only; holdfast still holds the connection and sends it elsewhere. */
  const giveBack = (socket: HandedSocket): void => {
    socket[RETURNED] = true;
    sockets.delete(socket);
    held.delete(socket);
    socket.destroy();
    send({ type: 'returned', id: socket[ID] });
  };

  const drain = (): void => {
    if (draining) return;
    draining = true;
    for (const socket of [...sockets]) if (atRest(socket)) giveBack(socket);
  };

  const pauseAtRest = (socket: HandedSocket): void => {
    socket.pause();
    held.add(socket);
  };

  const hold = (): void => {
    holding = true;
    for (const socket of sockets) if (atRest(socket)) pauseAtRest(socket);
  };

  const proceed = (): void => {
    holding = false;
    for (const socket of held) if (!socket.destroyed) socket.resume();
    held.clear();
  };

  const shed = (keep: number): void => {
    shedTo = keep;
    for (const socket of [...sockets]) {
      if (sockets.size <= shedTo) break;
      if (atRest(socket)) giveBack(socket);
    }
    if (sockets.size <= shedTo) shedTo = Infinity;
  };

  /** A response is over on a handed-off connection: give it back, pause it, or let it go on. */
  const atResponseEnd = (socket: HandedSocket): void => {
    if (!atRest(socket)) {
      if (socket.writableLength > 0 && !socket.writableEnded) socket.once('drain', () => sockets.has(socket) && atResponseEnd(socket));
      return;
    }
    if (draining) giveBack(socket);
    else if (sockets.size > shedTo) {
      giveBack(socket);
      if (sockets.size <= shedTo) shedTo = Infinity;
    } else if (holding) pauseAtRest(socket);
  };

  function onResponseClose(this: TimedResponse): void {
    active--;
    countResponse(this);
  }

  /** A static file's answer: counted in the metrics, never seen by the app nor counted as a request it served. */
  function onStaticResponseClose(this: TimedResponse): void {
    countResponse(this);
  }

  function countResponse(res: TimedResponse): void {
    const status = res.statusCode;
    const statusClass = status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : 4;
    statusCounts[statusClass]!++;
    const seconds = (perf_hooks.performance.now() - (res[STARTED] ?? 0)) / 1000;
    let i = 0;
    while (i < buckets.length && seconds > buckets[i]!) i++;
    bucketCounts[i]!++;
    durationSum += seconds;
    counted++;
    if (draining || holding || shedTo !== Infinity) {
      const socket = res.req?.socket as HandedSocket | undefined;
      if (socket && sockets.has(socket)) atResponseEnd(socket);
    }
  }

  /** Runs before the app sees a request on a handed-off connection; true when the hook answered it. */
  const onRequest = (req: http.IncomingMessage, res: TimedResponse, s: HandoffSettings): boolean => {
    (req.socket as HandedSocket)[SPOKE] = true;
    if (s.readinessPath !== null && req.url === s.readinessPath) {
      res.statusCode = draining ? 503 : 200;
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      if (draining) res.shouldKeepAlive = false;
      res.end(draining ? 'stopping\n' : 'ready\n');
      return true;
    }
    if (statics !== undefined) {
      res[STARTED] = perf_hooks.performance.now();
      if (draining) res.shouldKeepAlive = false;
      let answered = false;
      try {
        answered = statics.handle(req, res);
      } catch {
        // a bug of ours must not take the app down: the app answers as it would without static files
      }
      if (answered) {
        res.on('close', onStaticResponseClose);
        return true;
      }
    }
    active++;
    if (active > peak) peak = active;
    served++;
    res[STARTED] = perf_hooks.performance.now();
    res.on('close', onResponseClose);
    if (draining) res.shouldKeepAlive = false;
    else if (s.maxRequests > 0 && served >= s.maxRequests && !limitReported) {
      limitReported = true;
      hold();
      send({ type: 'limit', served });
    }
    res.setHeader(s.requestIdHeader, forward(req, s.requestIdHeader));
    return false;
  };

  /**
   * What the proxy adds (proxy/headers.ts): the chain, scheme, host and the request id; returns the
   * id. A new rawHeaders array only when the visitor sent X-Forwarded-For or a request id of its own
   * (ours replace them), else ours are appended: rebuilding it and lowercasing every name for every
   * request, with an in-progress listener on top, cost the hand-off path a tenth of its speed
   * against PM2's cluster mode.
   */
  const forward = (req: http.IncomingMessage, idHeader: string): string => {
    const socket = req.socket as HandedSocket;
    let address = socket[PEER];
    if (address === undefined) {
      address = socket.remoteAddress ?? '';
      if (address.startsWith('::ffff:') && address.includes('.')) address = address.slice(7);
      socket[PEER] = address;
    }
    // Node has built req.headers already (its server reads Host, Expect and TE before the app runs).
    const headers = req.headers;
    // Node joins repeated X-Forwarded-For lines with ', ' (it is not one of the headers it keeps as arrays).
    const visitorChain = headers['x-forwarded-for'] as string | undefined;
    const incomingId = headers[idHeader];
    const id = typeof incomingId === 'string' && REQUEST_ID_PATTERN.test(incomingId) ? incomingId : crypto.randomUUID();
    const chain = address === '' ? visitorChain : visitorChain === undefined ? address : `${visitorChain}, ${address}`;
    const addProto = headers['x-forwarded-proto'] === undefined;
    const host = headers['x-forwarded-host'] === undefined ? headers.host : undefined;
    // rawHeaders must tell the same story (frameworks read either); the visitor's own
    // X-Forwarded-For lines and request id give way to ours, as on the proxy path.
    const raw = req.rawHeaders;
    let out = raw;
    if (visitorChain !== undefined || incomingId !== undefined) {
      out = [];
      for (let i = 0; i < raw.length; i += 2) {
        const lower = raw[i]!.toLowerCase();
        if (lower !== 'x-forwarded-for' && lower !== idHeader) out.push(raw[i]!, raw[i + 1]!);
      }
      req.rawHeaders = out;
    }
    if (chain !== undefined) {
      headers['x-forwarded-for'] = chain;
      out.push('X-Forwarded-For', chain);
    }
    if (addProto) {
      headers['x-forwarded-proto'] = 'http';
      out.push('X-Forwarded-Proto', 'http');
    }
    if (host !== undefined) {
      headers['x-forwarded-host'] = host;
      out.push('X-Forwarded-Host', host);
    }
    headers[idHeader] = id;
    out.push(idHeader, id);
    return id;
  };

  const adopt = (server: http.Server, s: HandoffSettings): void => {
    const connections = Object.getOwnPropertySymbols(server).find((sym) => sym.description === 'http.server.connections');
    const list = connections ? (server as unknown as Record<symbol, { idle?: () => unknown[] }>)[connections] : undefined;
    if (!list || typeof list.idle !== 'function') return;
    idleParsers = () => list.idle!();
    // The visitor-side limits holdfast's proxy would have applied (after the app's own code ran).
    server.headersTimeout = s.headersTimeoutMs;
    server.requestTimeout = s.requestTimeoutMs;
    server.keepAliveTimeout = s.keepAliveTimeoutMs;
    handed = s;

    process.on('message', (message: { type?: unknown; id?: unknown } | null, handle: unknown) => {
      if (!message || typeof message !== 'object') return;
      if (message.type === 'holdfast:conn' && handle instanceof net.Socket && typeof message.id === 'number') {
        const socket = handle as HandedSocket;
        socket[ID] = message.id;
        if (draining || holding) {
          giveBack(socket); // it crossed our drain or limit on the way: untouched, it goes elsewhere
          return;
        }
        sockets.add(socket);
        // Node never times out a connection that sends nothing at all: the proxy's rule, here too.
        const silent = setTimeout(() => {
          if (!socket[SPOKE] && !socket[RETURNED] && socket.bytesRead === 0) socket.destroy();
        }, s.headersTimeoutMs);
        silent.unref();
        socket.once('close', () => {
          clearTimeout(silent);
          sockets.delete(socket);
          held.delete(socket);
          if (!socket[RETURNED]) send({ type: 'closed', id: socket[ID] });
        });
        // As net.Server does for its own connections: counted (server.close() waits for them),
        // half-open allowed (an HTTP server's sockets are).
        socket.allowHalfOpen = true;
        const counted = server as unknown as { _connections: number };
        counted._connections++;
        (socket as unknown as { server: unknown; _server: unknown }).server = server;
        (socket as unknown as { _server: unknown })._server = server;
        server.emit('connection', socket);
      } else if (message.type === 'holdfast:drain') {
        drain();
      } else if (message.type === 'holdfast:continue') {
        proceed();
      } else if (message.type === 'holdfast:shed' && typeof (message as { keep?: unknown }).keep === 'number') {
        shed((message as { keep: number }).keep);
      } else if (message.type === 'holdfast:flush') {
        send({ type: 'stats', peak, served, stats: takeStats() });
      }
    });
    // process.on('message') refs the channel again unless unref is explicit: keep it explicit.
    channel.unref();
  };

  /**
   * Every request of the app's server passes here before the app's own listeners, in the one
   * wrapper of server.emit (a prepended 'request' listener as well cost every request a second
   * listener call). A request on a handed-off connection goes to onRequest, which may answer it
   * itself. Any other request was proxied by holdfast: it is noted, by the request id holdfast gave
   * it, until its response closes, and the ones still open are written to stderr as the process
   * exits, so that holdfast retries elsewhere only those it never started on (a request that kills
   * its process is never sent to a second one).
   */
  const watchRequests = (server: http.Server): void => {
    // Counted by id: a visitor may send its own id on several requests at once, and the first to
    // finish must not hide the others (holdfast would send one that killed this process to another).
    const inProgress = new Map<string, number>();
    // Shared listener and the id on the response: no closure per request ('close' comes once).
    function forget(this: http.ServerResponse & { [IN_PROGRESS_ID]?: string }): void {
      const id = this[IN_PROGRESS_ID]!;
      const open = inProgress.get(id) ?? 1;
      if (open > 1) inProgress.set(id, open - 1);
      else inProgress.delete(id);
    }
    const emit = server.emit as (this: http.Server, event: string | symbol, ...args: unknown[]) => boolean;
    server.emit = function (this: http.Server, event: string | symbol, req?: unknown, res?: unknown): boolean {
      if (event !== 'request') {
        // eslint-disable-next-line prefer-rest-params
        return Reflect.apply(emit, this, arguments) as boolean;
      }
      const request = req as http.IncomingMessage;
      if (handed !== undefined && sockets.has(request.socket as HandedSocket)) {
        if (onRequest(request, res as TimedResponse, handed)) return true;
      } else {
        // Only proxied requests: holdfast retries none of a handed-off connection's.
        const id = request.headers['x-request-id'];
        if (typeof id === 'string') {
          inProgress.set(id, (inProgress.get(id) ?? 0) + 1);
          (res as http.ServerResponse & { [IN_PROGRESS_ID]?: string })[IN_PROGRESS_ID] = id;
          (res as http.ServerResponse).on('close', forget);
        }
      }
      return emit.call(this, event, req, res);
    } as typeof server.emit;
    process.once('exit', () => {
      if (inProgress.size === 0) return;
      let line = '';
      let report = '\n';
      for (const id of inProgress.keys()) {
        if (line !== '' && line.length + id.length >= IN_PROGRESS_LINE_CHARS) {
          report += `${IN_PROGRESS_MARKER}${line}\n`;
          line = '';
        }
        line += line === '' ? id : ` ${id}`;
      }
      report += `${IN_PROGRESS_MARKER}${line}\n`;
      try {
        const bytes = Buffer.from(report, 'latin1');
        for (let at = 0; at < bytes.length; ) at += fs.writeSync(2, bytes, at);
      } catch {
        // stderr is gone: holdfast falls back to its own guess
      }
    });
  };

  const originalListen = net.Server.prototype.listen;

  function listen(this: net.Server, ...args: unknown[]): net.Server {
    if (redirected) return originalListen.apply(this, args as Parameters<typeof originalListen>);
    redirected = true;
    net.Server.prototype.listen = originalListen; // later servers (admin ports, tests) are the app's own business
    const last = args[args.length - 1];
    const callback = typeof last === 'function' ? (last as () => void) : undefined;
    this.once('listening', () => {
      if (this instanceof http.Server) watchRequests(this);
      if (settings && this instanceof http.Server) adopt(this, settings);
      send({ type: 'ready', handoff: idleParsers !== undefined });
    });
    // Node reads this once, when listening starts: its default (30 s) would let an idle or slow
    // connection live up to twice the headers timeout; look as often as the proxy does.
    if (settings && this instanceof http.Server) {
      (this as http.Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(25, Math.min(1_000, Math.floor(Math.min(settings.headersTimeoutMs, settings.requestTimeoutMs || Infinity) / 4)));
    }
    const options = { path: socketPath! };
    return callback ? originalListen.call(this, options, callback) : originalListen.call(this, options);
  }
  net.Server.prototype.listen = listen as typeof originalListen;
}

install();
