// The visitor's side of an exchange as the proxy's serving logic uses it. Node's IncomingMessage and
// ServerResponse fit these as they are; the fast lane (fast-lane.ts) has its own lighter ones, so
// that the same serving logic (queue, retry, time limits, error pages) runs on both.

import type { Socket } from 'node:net';

/** As Node's emitters type their listeners, so that IncomingMessage and ServerResponse fit. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;

export interface VisitorRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  /** Lowercase names; the proxy reads host, accept, the request id header, content-length and transfer-encoding. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Flat [name, value, ...] in the visitor's order and case. */
  readonly rawHeaders: readonly string[];
  /** The whole request (its body too) has been read. */
  readonly complete: boolean;
  readonly socket: Socket;
  /** Read the rest of the body and drop it. */
  resume(): unknown;
  on(event: 'data' | 'end' | 'close' | 'error', listener: Listener): unknown;
  off(event: 'data' | 'end' | 'close' | 'error', listener: Listener): unknown;
  pause(): unknown;
}

export type VisitorHeaders = Record<string, string | number> | string[];

export interface VisitorResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  /** The whole response was handed to the connection. */
  readonly writableFinished: boolean;
  /** false: close the connection after this response. */
  shouldKeepAlive: boolean;
  writeHead(statusCode: number, headers: VisitorHeaders): unknown;
  writeHead(statusCode: number, statusText: string, headers: VisitorHeaders): unknown;
  /** false: wait for 'drain'. */
  write(chunk: Buffer): boolean;
  end(body?: string | Buffer): unknown;
  destroy(): unknown;
  writeContinue(): void;
  writeEarlyHints(hints: { link: string[] }): void;
  /** 'close': the response is over (finished or cut); 'drain': write() may go on; 'error'. */
  on(event: 'close' | 'drain' | 'error', listener: Listener): unknown;
  once(event: 'close', listener: Listener): unknown;
  off(event: 'drain', listener: Listener): unknown;
}
