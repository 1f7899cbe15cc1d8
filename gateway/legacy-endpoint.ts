/**
 * The legacy endpoint: a socket.io 4 server (EIO 3 and 4) on `/socket.io/`
 * speaking Sails virtual requests, so unchanged Sync clients can connect to
 * Bifrost. See docs/legacy-protocol.md.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { Server as SocketIoServer } from 'socket.io';
import type { GatewayContext } from './context.ts';
import { LegacyConnection } from './legacy-connection.ts';

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
      allowRequest: (_req, cb) => {
        if (ctx.isDraining()) {
          ctx.metrics.upgradesRejected.inc({ protocol: 'legacy', reason: 'draining' });
          return cb('node is draining', false);
        }
        if (ctx.load.current().loadFactor > 1) {
          ctx.metrics.upgradesRejected.inc({ protocol: 'legacy', reason: 'overloaded' });
          return cb('node overloaded', false);
        }
        cb(null, true);
      },
    });
    this.io.engine.on('connection_error', (err: { code: number; message: string }) => {
      ctx.log.debug({ code: err.code, message: err.message }, 'legacy handshake refused');
    });
    this.io.on('connection', (socket) => {
      ctx.metrics.connections.inc({ protocol: 'legacy' });
      ctx.metrics.connectionsOpened.inc({ protocol: 'legacy' });
      new LegacyConnection(ctx, socket);
    });
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
