/** Refusing an HTTP upgrade with a real HTTP answer (status, JSON error, optional Retry-After). */
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { GatewayContext } from './context.ts';

/** Why the node takes no new connection now (draining, or over its load factor), for a 503. */
export interface AdmissionRefusal {
  reason: 'draining' | 'overloaded';
  message: string;
  retryAfterSec: number;
}

/** Admission control, shared by the native and legacy endpoints: undefined admits. */
export function admissionRefusal(ctx: Pick<GatewayContext, 'isDraining' | 'load'>): AdmissionRefusal | undefined {
  if (ctx.isDraining()) return { reason: 'draining', message: 'node is draining: connect to another node', retryAfterSec: 1 };
  const load = ctx.load.current();
  if (load.loadFactor > 1) return { reason: 'overloaded', message: `node overloaded (${load.binding} at ${load.dimensions[load.binding]} of target)`, retryAfterSec: 2 };
  return undefined;
}

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
