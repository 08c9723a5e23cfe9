// Answers written straight onto a socket, where there is no ServerResponse: malformed requests
// (clientError) and Upgrade requests that cannot be forwarded.

import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/** Writes a complete response and closes the connection; a no-op when the socket is gone. */
export function writeRawResponse(socket: Duplex, status: number, headers: Record<string, string>, body: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const bytes = Buffer.from(body, 'utf8');
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  head += `content-length: ${bytes.length}\r\nconnection: close\r\n\r\n`;
  // The visitor may never close its side (the server allows half-open sockets): once the answer
  // is flushed, the connection is ours to end.
  socket.end(Buffer.concat([Buffer.from(head, 'latin1'), bytes]), () => socket.destroy());
}
