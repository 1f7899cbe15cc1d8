/** The native endpoint: HTTP upgrades on `/ws`, admission, authentication, heartbeat. */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type Server } from 'ws';
import type { ClientConnection } from './client-connection.ts';
import type { GatewayContext } from './context.ts';
import { ExpiryWheel } from './expiry-wheel.ts';
import { ConnSocket, NativeConnection, type NativeHost } from './native-connection.ts';
import { TokenError, verifyAccessToken } from './token.ts';
import { admissionRefusal, refuseUpgrade } from './upgrade-refusal.ts';

/** About how often the heartbeat sweep runs (each tick pings its share of the sockets). */
const HEARTBEAT_TICK_MS = 1000;

export function tokenFromRequest(req: IncomingMessage, url: URL): string | undefined {
  const auth = req.headers.authorization;
  if (auth && /^bearer /i.test(auth)) return auth.slice(7).trim();
  return url.searchParams.get('token') ?? (req.headers['x-access-token'] as string | undefined) ?? undefined;
}

/** Listener for errors of a socket that is being upgraded or refused (one shared function, not one per socket). */
function ignoreSocketError(): void {}

export class NativeEndpoint implements NativeHost {
  private readonly wss: Server<typeof ConnSocket>;
  /** Access-token expiry of every connection, on one timer. */
  readonly expiries = new ExpiryWheel();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: GatewayContext) {
    this.wss = new WebSocketServer<typeof ConnSocket>({ WebSocket: ConnSocket, noServer: true, maxPayload: ctx.opts.maxFrameBytes, perMessageDeflate: false, clientTracking: false });
    this.wss.on('error', (err) => ctx.log.error({ err }, 'native websocket server error'));
  }

  /**
   * Heartbeat, spread over the ping interval: a tick about every second visits
   * an equal share of the sockets, so each socket is pinged once per interval
   * and a node holding 20,000 sockets never pings them all in one turn (one
   * syscall each: tens of milliseconds during which no event is delivered).
   */
  start(): void {
    const interval = this.ctx.opts.pingIntervalMs;
    const ticks = Math.max(1, Math.round(interval / HEARTBEAT_TICK_MS));
    const { registry } = this.ctx;
    let sweep: Iterator<ClientConnection> | undefined;
    this.heartbeat = setInterval(() => {
      // The registry's iterator is live: sockets closed since skip themselves, new ones join this sweep.
      // Legacy sockets are in it too (socket.io pings those itself): they take a share of a tick and are skipped.
      for (let n = Math.ceil(registry.size / ticks); n > 0; n--) {
        sweep ??= registry.all();
        const next = sweep.next();
        if (next.done) {
          sweep = undefined;
          break;
        }
        if (next.value instanceof NativeConnection) next.value.heartbeat();
      }
    }, interval / ticks);
    this.heartbeat.unref();
    this.expiries.start();
  }

  /** Handles an upgrade for `/ws`; returns false for any other path. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (url.pathname !== '/ws') return false;
    socket.on('error', ignoreSocketError);
    void this.admit(req, socket, head, url);
    return true;
  }

  private async admit(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<void> {
    const { ctx } = this;
    const refused = admissionRefusal(ctx);
    if (refused) {
      ctx.metrics.upgradesRejected.inc({ protocol: 'native', reason: refused.reason });
      refuseUpgrade(socket, 503, 'unavailable', refused.message, refused.retryAfterSec);
      return;
    }
    const token = tokenFromRequest(req, url);
    let claims;
    try {
      claims = await verifyAccessToken(ctx.opts.tokenSecret, token);
    } catch (err) {
      const reason = err instanceof TokenError ? err.reason : 'malformed';
      ctx.metrics.upgradesRejected.inc({ protocol: 'native', reason: `token-${reason}` });
      refuseUpgrade(socket, 401, 'unauthorized', (err as Error).message);
      return;
    }
    if (socket.destroyed) return;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // ws handles the socket's errors from here on; one listener fewer per socket.
      socket.removeListener('error', ignoreSocketError);
      const conn = new NativeConnection(ctx, ws, claims, token!, this);
      ctx.registry.add(conn);
      ctx.metrics.connections.inc({ protocol: 'native' });
      ctx.metrics.connectionsOpened.inc({ protocol: 'native' });
    });
  }

  /** Closes every socket at once with 1012 and a reconnect invitation (shutdown after the drain window). */
  closeAll(): void {
    for (const c of [...this.ctx.registry.all()]) if (c instanceof NativeConnection) c.disconnect('drain', 0);
  }

  close(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.expiries.stop();
    this.wss.close();
  }
}
