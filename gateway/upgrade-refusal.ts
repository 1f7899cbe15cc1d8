/** Refusing an HTTP upgrade with a real HTTP answer (status, JSON error, optional Retry-After). */
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';

export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string, retryAfterSec?: number): void {
  const body = JSON.stringify({ error: { code, message } });
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(retryAfterSec !== undefined ? [`Retry-After: ${retryAfterSec}`] : []),
  ];
  if (socket.writable) socket.end(head.join('\r\n') + '\r\n\r\n' + body);
  socket.destroySoon?.();
  setTimeout(() => socket.destroy(), 1000).unref();
}

declare module 'node:stream' {
  interface Duplex {
    destroySoon?: () => void;
  }
}
