/**
 * The legacy endpoint: a socket.io 4 server (EIO 3 and 4) on `/socket.io/`
 * speaking Sails virtual requests, so unchanged Sync clients can connect to
 * Bifrost. See docs/legacy-protocol.md.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Server as SocketIoServer } from 'socket.io';
import type { GatewayContext } from './context.ts';
import { LegacyConnection } from './legacy-connection.ts';
import { admissionRefusal, refuseUpgrade, type AdmissionRefusal } from './upgrade-refusal.ts';

export const LEGACY_PATH = '/socket.io/';

export class LegacyEndpoint {
  private io: SocketIoServer | undefined;

  constructor(private readonly ctx: GatewayContext) {}

  attach(server: HttpServer): void {
    const { ctx } = this;
    this.io = new SocketIoServer(server, {
      path: LEGACY_PATH,
      allowEIO3: true,
      serveClient: false,
      destroyUpgrade: false,
      maxHttpBufferSize: ctx.opts.maxLegacyMessageBytes,
      cors: { origin: true, credentials: true },
    });
    this.admitInFrontOfEngine(server);
    this.io.engine.on('connection_error', (err: { code: number; message: string }) => {
      ctx.log.debug({ code: err.code, message: err.message }, 'legacy handshake refused');
    });
    this.io.on('connection', (socket) => {
      ctx.metrics.connections.inc({ protocol: 'legacy' });
      ctx.metrics.connectionsOpened.inc({ protocol: 'legacy' });
      new LegacyConnection(ctx, socket);
    });
  }

  /**
   * Admission for new legacy sessions, answered like the native endpoint's:
   * 503 with `Retry-After` and a JSON error while the node drains or is over
   * its load factor. engine.io's own `allowRequest` could only answer 400 or
   * 403, so the check runs in front of the listeners engine.io installed on the
   * HTTP server. Requests of an existing session (`sid`) are not affected.
   */
  private admitInFrontOfEngine(server: HttpServer): void {
    const wrap = <T>(event: 'request' | 'upgrade', refuse: (req: IncomingMessage, target: T, why: AdmissionRefusal) => void): void => {
      const listeners = server.listeners(event) as ((...args: unknown[]) => void)[];
      server.removeAllListeners(event);
      server.on(event, (req: IncomingMessage, target: T, head?: Buffer) => {
        const why = this.isNewSession(req) ? admissionRefusal(this.ctx) : undefined;
        if (why) {
          this.ctx.metrics.upgradesRejected.inc({ protocol: 'legacy', reason: why.reason });
          refuse(req, target, why);
          return;
        }
        for (const l of listeners) l.call(server, req, target, head);
      });
    };
    wrap<ServerResponse>('request', (req, res, why) => {
      const body = JSON.stringify({ error: { code: 'unavailable', message: why.message } });
      const headers: Record<string, string> = { 'content-type': 'application/json', 'retry-after': String(why.retryAfterSec), connection: 'close' };
      if (req.headers.origin) {
        headers['access-control-allow-origin'] = req.headers.origin;
        headers['access-control-allow-credentials'] = 'true';
      }
      res.writeHead(503, headers);
      res.end(body);
    });
    wrap<Duplex>('upgrade', (_req, socket, why) => {
      socket.on('error', () => {});
      refuseUpgrade(socket, 503, 'unavailable', why.message, why.retryAfterSec);
    });
  }

  /** A request that would open a new engine.io session (no `sid` yet) on the legacy path. */
  private isNewSession(req: IncomingMessage): boolean {
    const url = req.url ?? '';
    return url.startsWith(LEGACY_PATH) && !/[?&]sid=/.test(url);
  }

  ownsUpgrade(req: IncomingMessage): boolean {
    return (req.url ?? '').startsWith(LEGACY_PATH);
  }

  async close(): Promise<void> {
    const io = this.io;
    if (!io) return;
    this.io = undefined;
    // Close the transports (not a socket.io "server disconnect", after which
    // clients would not reconnect by themselves): a restart looks like a blip.
    for (const socket of io.of('/').sockets.values()) socket.conn.close();
    // io.close() would also close the shared HTTP server; the gateway closes that itself.
    io.engine.close();
  }
}
