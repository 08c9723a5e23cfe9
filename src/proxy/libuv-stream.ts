// Node's own libuv stream bindings (tcp_wrap, pipe_wrap, stream_wrap: what lib/net.js builds
// net.Socket on), for the two places the proxy drives a connection's handle itself: the
// connections to app processes (upstream-wire.ts) and the fast lane's reads and writes on a
// visitor's connection (fast-lane.ts). See docs/performance.md (issue 14) for what it saves.

/** A libuv stream handle as Node's bindings make it (lib/net.js uses the same methods). */
export interface WireHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  /** net.Socket's flag: the handle is reading (its _read() starts reading when this is false). */
  reading?: boolean;
  /** Called by C++ with the read result in streamBaseState[kReadBytesOrError]. */
  onread: ((arrayBuffer?: ArrayBuffer) => unknown) | null;
  readStart(): number;
  readStop(): number;
  close(callback: () => void): void;
  writeLatin1String(req: WriteRequest, data: string): number;
  writeBuffer(req: WriteRequest, data: Buffer): number;
  writev(req: WriteRequest, chunks: Buffer[], allBuffers: boolean): number;
  setNoDelay?(enable: boolean): number;
  connect(req: ConnectRequest, address: string, port?: number): number;
  connect6?(req: ConnectRequest, address: string, port: number): number;
}

export interface ConnectRequest {
  oncomplete: (status: number) => void;
}

/** A write handed to libuv; what it needs once complete rides on it. */
export interface WriteRequest {
  oncomplete: (this: WriteRequest, status: number) => void;
  /** Kept referenced until libuv is done with it (a Buffer is written from its own memory). */
  data: string | Buffer | Buffer[] | null;
  /** Whoever wrote it (the wire or the visitor connection), for oncomplete. */
  owner: unknown;
  done: (() => void) | null;
}

interface Bindings {
  TCP: new (type: number) => WireHandle;
  TCPConnectWrap: new () => ConnectRequest;
  tcpSocket: number;
  Pipe: new (type: number) => WireHandle;
  PipeConnectWrap: new () => ConnectRequest;
  pipeSocket: number;
  WriteWrap: new () => WriteRequest;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
  uvEof: number;
}

function loadBindings(): Bindings {
  // process.binding() is the supported way to these (deprecated in documentation only, DEP0111).
  const binding = (name: string): Record<string, unknown> => (process as unknown as { binding(name: string): Record<string, unknown> }).binding(name);
  const tcp = binding('tcp_wrap');
  const pipe = binding('pipe_wrap');
  const stream = binding('stream_wrap');
  return {
    TCP: tcp['TCP'] as Bindings['TCP'],
    TCPConnectWrap: tcp['TCPConnectWrap'] as Bindings['TCPConnectWrap'],
    tcpSocket: (tcp['constants'] as { SOCKET: number }).SOCKET,
    Pipe: pipe['Pipe'] as Bindings['Pipe'],
    PipeConnectWrap: pipe['PipeConnectWrap'] as Bindings['PipeConnectWrap'],
    pipeSocket: (pipe['constants'] as { SOCKET: number }).SOCKET,
    WriteWrap: stream['WriteWrap'] as Bindings['WriteWrap'],
    streamBaseState: stream['streamBaseState'] as Int32Array,
    kReadBytesOrError: stream['kReadBytesOrError'] as number,
    kArrayBufferOffset: stream['kArrayBufferOffset'] as number,
    kLastWriteWasAsync: stream['kLastWriteWasAsync'] as number,
    uvEof: binding('uv')['UV_EOF'] as number,
  };
}

export const B = loadBindings();

/**
 * Hands `data` to libuv on `handle`: a latin1 string, a Buffer, or Buffers in one writev. Returns
 * 0 when the kernel took it all, a negative libuv error, or the request when libuv had to queue it:
 * `oncomplete` runs on it once done, and it keeps `data` referenced until then.
 */
export function writeToHandle(handle: WireHandle, data: string | Buffer | Buffer[], oncomplete: WriteRequest['oncomplete']): number | WriteRequest {
  const req = new B.WriteWrap();
  req.oncomplete = oncomplete;
  let status: number;
  if (typeof data === 'string') status = handle.writeLatin1String(req, data);
  else if (Buffer.isBuffer(data)) status = handle.writeBuffer(req, data);
  else status = handle.writev(req, data, true);
  if (status !== 0 || B.streamBaseState[B.kLastWriteWasAsync] === 0) return status;
  req.data = data;
  return req;
}
