/**
 * One legacy client (Sails virtual requests over socket.io). It authenticates
 * per request with `x-access-token`, like Sync; it joins topics only when a
 * service says so (`x-bifrost-subscribe`), and receives each event as
 * `socket.emit(event, data)`, the Sails resourceful pub/sub shape.
 */
import type { Socket } from 'socket.io';
import type { ClientConnection } from './client-connection.ts';
import type { GatewayContext } from './context.ts';
import { GatewayError } from './errors.ts';
import { forwardClientRequest } from './client-request.ts';
import { TokenBucket } from './rate-limiter.ts';
import { TopicSubscription } from './topic-subscription.ts';
import { TokenError, verifyAccessToken, type AccessClaims } from './token.ts';

export interface VirtualRequest {
  method?: unknown;
  url?: unknown;
  headers?: unknown;
  data?: unknown;
}

export interface JWR {
  body: unknown;
  headers: Record<string, string>;
  statusCode: number;
}

/** A legacy client with more unsent packets than this is a slow consumer and is closed. */
const MAX_QUEUED_PACKETS = 10_000;
const METHODS = new Set(['get', 'post', 'put', 'patch', 'delete']);

/**
 * Event names socket.io keeps for itself: `socket.emit` throws on them. The
 * private API refuses to publish them (POST /v1/publish answers 400); events
 * with these names that reach a legacy socket anyway (kept from before) are
 * skipped, never emitted.
 */
export const LEGACY_RESERVED_EVENTS: ReadonlySet<string> = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

function jwrError(statusCode: number, name: string, message: string): JWR {
  return { statusCode, headers: { 'content-type': 'application/json; charset=utf-8' }, body: { error: { name, message } } };
}

export class LegacyConnection implements ClientConnection {
  readonly protocol = 'legacy' as const;
  claims: AccessClaims = { userId: '', teamId: '', exp: 0 };
  private identified = false;
  private closed = false;
  private readonly subs = new Map<string, TopicSubscription>();
  private readonly bucket: TokenBucket;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly socket: Socket,
  ) {
    this.bucket = new TokenBucket(ctx.opts.opRatePerSec, ctx.opts.opBurst);
    for (const m of METHODS) {
      socket.on(m, (req: VirtualRequest, ack?: unknown) => {
        if (typeof ack !== 'function') {
          ctx.metrics.framesRejected.inc({ protocol: 'legacy', reason: 'no-ack' });
          return;
        }
        this.onRequest(m, req, ack as (r: JWR) => void);
      });
    }
    ctx.registry.add(this);
    socket.on('disconnect', (reason) => this.onClose(reason));
    socket.on('error', (err) => ctx.log.debug({ err, conn: this.id }, 'legacy socket error'));
  }

  get id(): string {
    return this.socket.id;
  }

  private onRequest(event: string, req: VirtualRequest, ack: (r: JWR) => void): void {
    const { ctx } = this;
    if (!this.bucket.take()) {
      ctx.metrics.framesRejected.inc({ protocol: 'legacy', reason: 'throttle' });
      ack(jwrError(429, 'throttleError', `more than ${ctx.opts.opRatePerSec} requests per second (burst ${ctx.opts.opBurst})`));
      return;
    }
    if (typeof req !== 'object' || req === null || Array.isArray(req) || typeof req.url !== 'string' || !req.url.startsWith('/')) {
      ctx.metrics.framesRejected.inc({ protocol: 'legacy', reason: 'bad-request' });
      ack(jwrError(400, 'badRequest', 'a virtual request is {method, url, headers, data} with url starting with /'));
      return;
    }
    const headers: Record<string, string> = {};
    if (req.headers !== undefined && req.headers !== null) {
      if (typeof req.headers !== 'object' || Array.isArray(req.headers)) {
        ack(jwrError(400, 'badRequest', 'headers must be an object'));
        return;
      }
      for (const [k, v] of Object.entries(req.headers as Record<string, unknown>)) if (typeof v === 'string') headers[k.toLowerCase()] = v;
    }
    // The method becomes a metric label: only the five Sails verbs, like the native protocol.
    const op = typeof req.method === 'string' ? req.method.toLowerCase() : req.method === undefined || req.method === null ? event : undefined;
    if (op === undefined || !METHODS.has(op)) {
      ctx.metrics.framesRejected.inc({ protocol: 'legacy', reason: 'bad-request' });
      ack(jwrError(400, 'badRequest', 'method must be one of get, post, put, patch, delete'));
      return;
    }
    ctx.metrics.framesReceived.inc({ protocol: 'legacy', op });
    this.forward(op.toUpperCase(), req.url, headers, req.data).then(ack, (err: unknown) => {
      const e = err instanceof GatewayError ? err : new GatewayError('serverError', (err as Error).message);
      ack(jwrError(e.status, e.code, e.message));
    });
  }

  private async forward(method: string, url: string, headers: Record<string, string>, data: unknown): Promise<JWR> {
    const token = headers['x-access-token'];
    let claims: AccessClaims;
    try {
      claims = await verifyAccessToken(this.ctx.opts.tokenSecret, token);
    } catch (err) {
      this.ctx.metrics.requests.inc({ protocol: 'legacy', service: 'unrouted', status: '403' });
      // The same answer Sync gives, so unchanged clients handle it as before.
      return jwrError(403, 'authenticationError', err instanceof TokenError ? err.message : 'invalid access token');
    }
    if (!this.identified) {
      this.claims = claims;
      this.ctx.registry.identify(this);
      this.identified = true;
    }
    const body = method === 'GET' ? undefined : data;
    const query = method === 'GET' && data && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : undefined;
    const res = await forwardClientRequest(
      this.ctx,
      'legacy',
      { method, path: url, query: query ? flattenQuery(query) : undefined, body, headers, token: token!, claims },
      this,
    );
    return { body: res.body, headers: res.headers, statusCode: res.status };
  }

  grant(): void {
    // Legacy sockets only ever hold topics a service subscribed them to.
  }

  async serverSubscribe(topic: string): Promise<void> {
    if (this.subs.has(topic) || this.closed) return;
    if (this.subs.size >= this.ctx.opts.maxTopicsPerConnection) throw new GatewayError('badRequest', 'too many topics on one connection');
    const sub = new TopicSubscription(topic, (ev) => {
      if (this.bufferedPackets() > MAX_QUEUED_PACKETS) {
        this.ctx.log.warn({ conn: this.id, user: this.claims.userId }, 'slow legacy consumer closed');
        this.ctx.metrics.slowConsumers.inc({ protocol: 'legacy' });
        this.disconnect('policy');
        return;
      }
      if (LEGACY_RESERVED_EVENTS.has(ev.pub.event)) return;
      this.socket.emit(ev.pub.event, ev.data());
      this.ctx.metrics.eventsDelivered.inc({ protocol: 'legacy' });
    });
    this.subs.set(topic, sub);
    try {
      await sub.start(this.ctx.fanout, this.ctx.broker, undefined, 1, () => {});
    } catch (err) {
      this.subs.delete(topic);
      throw err;
    }
    if (this.closed) await this.ctx.fanout.remove(topic, sub);
  }

  async serverUnsubscribe(topic: string): Promise<void> {
    const sub = this.subs.get(topic);
    if (!sub) return;
    this.subs.delete(topic);
    await this.ctx.fanout.remove(topic, sub);
  }

  /**
   * Drain closes the transport (not a socket.io "server disconnect"), so the
   * client library's own reconnect logic runs, as after any network blip.
   */
  disconnect(reason: 'drain' | 'policy' | 'auth-expired'): void {
    if (this.closed) return;
    if (reason === 'drain') this.socket.conn.close();
    else this.socket.disconnect(true);
  }

  /** Packets engine.io holds for this client and has not written yet. */
  private bufferedPackets(): number {
    return (this.socket.conn as unknown as { writeBuffer?: unknown[] }).writeBuffer?.length ?? 0;
  }

  bufferedBytes(): number {
    return 0;
  }

  private onClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.registry.remove(this);
    this.ctx.metrics.connections.dec({ protocol: 'legacy' });
    this.ctx.metrics.connectionsClosed.inc({ protocol: 'legacy', code: reason });
    for (const [topic, sub] of this.subs) void this.ctx.fanout.remove(topic, sub);
    this.subs.clear();
  }
}

/** Sails blueprints take GET parameters from the query string; nested values travel as JSON. */
function flattenQuery(q: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
  }
  return out;
}
