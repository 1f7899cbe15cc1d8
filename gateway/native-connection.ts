/** One native `/ws` client: frames in, frames out, its subscriptions and limits. */
import { randomUUID } from 'node:crypto';
import type { WebSocket, RawData } from 'ws';
import type { ClientConnection } from './client-connection.ts';
import type { GatewayContext } from './context.ts';
import { GatewayError } from './errors.ts';
import { forwardClientRequest } from './client-request.ts';
import {
  CLOSE_AUTH_EXPIRED,
  CLOSE_DRAIN,
  CLOSE_POLICY,
  CLOSE_SLOW_CONSUMER,
  errorFrame,
  parseClientFrame,
  type ClientFrame,
  type FrameId,
} from './native-protocol.ts';
import { TokenBucket } from './rate-limiter.ts';
import { TopicSubscription } from './topic-subscription.ts';
import type { AccessClaims } from './token.ts';
import type { StreamPosition } from './broker.ts';

const MAX_TIMER_MS = 2 ** 31 - 1;

export class NativeConnection implements ClientConnection {
  readonly id = randomUUID();
  readonly protocol = 'native' as const;
  private readonly subs = new Map<string, TopicSubscription>();
  private readonly granted = new Set<string>();
  private readonly bucket: TokenBucket;
  private readonly expiryTimer: NodeJS.Timeout;
  private closed = false;
  /** A close was started: nothing more is sent. */
  private closing = false;
  /** Set by the heartbeat: false until the next pong. */
  alive = true;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly ws: WebSocket,
    readonly claims: AccessClaims,
    private readonly token: string,
  ) {
    this.bucket = new TokenBucket(ctx.opts.opRatePerSec, ctx.opts.opBurst);
    const untilExpiry = Math.min(MAX_TIMER_MS, Math.max(0, claims.exp * 1000 - Date.now()));
    this.expiryTimer = setTimeout(() => this.disconnect('auth-expired'), untilExpiry);
    this.expiryTimer.unref();
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', (code) => this.onClose(code));
    ws.on('error', (err) => {
      // ws closes the socket itself (1009 for an oversized frame, 1002 for a protocol error).
      ctx.metrics.framesRejected.inc({ protocol: 'native', reason: (err as Error & { code?: string }).code ?? 'socket-error' });
      ctx.log.debug({ err, conn: this.id }, 'native socket error');
    });
  }

  /** Sends a frame unless the client is too far behind, in which case it is closed with 4008. */
  send(frame: string): void {
    if (this.closed || this.closing) return;
    if (this.ws.bufferedAmount + frame.length > this.ctx.opts.maxBufferedBytes) {
      this.ctx.metrics.slowConsumers.inc({ protocol: 'native' });
      this.ctx.log.warn({ conn: this.id, user: this.claims.userId, buffered: this.ws.bufferedAmount }, 'slow consumer closed');
      // The close frame waits behind the unsent data; close() terminates the
      // socket if the client has not read its way to it within 5 s.
      this.close(CLOSE_SLOW_CONSUMER, 'slow consumer');
      return;
    }
    this.ws.send(frame);
  }

  private reply(id: FrameId | undefined, body: Record<string, unknown>): void {
    this.send(JSON.stringify(id === undefined ? body : { id, ...body }));
  }

  private fail(id: FrameId | undefined, err: unknown): void {
    const e = err instanceof GatewayError ? err : new GatewayError('serverError', (err as Error)?.message ?? 'internal error');
    if (!(err instanceof GatewayError)) this.ctx.log.error({ err, conn: this.id }, 'native frame failed');
    this.send(errorFrame(id, e.code, e.message));
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    if (!this.bucket.take()) {
      this.ctx.metrics.framesRejected.inc({ protocol: 'native', reason: 'throttle' });
      this.send(errorFrame(undefined, 'throttleError', `more than ${this.ctx.opts.opRatePerSec} operations per second (burst ${this.ctx.opts.opBurst})`));
      return;
    }
    if (isBinary) {
      this.ctx.metrics.framesRejected.inc({ protocol: 'native', reason: 'binary' });
      this.send(errorFrame(undefined, 'badRequest', 'binary frames are not supported: send JSON text frames'));
      return;
    }
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(data.toString());
    } catch (err) {
      this.ctx.metrics.framesRejected.inc({ protocol: 'native', reason: 'bad-request' });
      this.fail((err as { frameId?: FrameId }).frameId, err);
      return;
    }
    this.ctx.metrics.framesReceived.inc({ protocol: 'native', op: frame.op });
    this.handle(frame).catch((err) => this.fail(frame.id, err));
  }

  private async handle(f: ClientFrame): Promise<void> {
    switch (f.op) {
      case 'ping':
        this.reply(f.id, { op: 'pong' });
        return;
      case 'subscribe':
        await this.subscribe(f.topic, f.since, f.id, false);
        return;
      case 'unsubscribe':
        await this.unsubscribe(f.topic);
        this.reply(f.id, { op: 'ok' });
        return;
      case 'request': {
        const res = await forwardClientRequest(
          this.ctx,
          'native',
          { service: f.service, method: f.method, path: f.path, query: f.query, body: f.body, headers: f.headers, token: this.token, claims: this.claims },
          this,
        );
        this.reply(f.id, { op: 'response', status: res.status, headers: res.headers, body: res.body });
        return;
      }
    }
  }

  private async subscribe(topic: string, since: StreamPosition | undefined, id: FrameId | undefined, byServer: boolean): Promise<void> {
    if (!byServer && !this.ctx.policy(this.claims, topic, this.granted)) {
      throw new GatewayError('forbiddenError', `not allowed to subscribe to ${topic}`);
    }
    const existing = this.subs.get(topic);
    if (existing) {
      // Already subscribed: a re-subscribe with a position restarts the subscription from it.
      if (!since) {
        if (!byServer) this.reply(id, { op: 'ok' });
        return;
      }
      await this.unsubscribe(topic);
    }
    if (this.subs.size >= this.ctx.opts.maxTopicsPerConnection) {
      throw new GatewayError('badRequest', `a connection may hold at most ${this.ctx.opts.maxTopicsPerConnection} topics`);
    }
    const sub = new TopicSubscription(topic, (_pub, frame) => {
      this.send(frame());
      this.ctx.metrics.eventsDelivered.inc({ protocol: 'native' });
    });
    this.subs.set(topic, sub);
    try {
      await sub.start(this.ctx.fanout, this.ctx.broker, since, this.ctx.opts.historySize, ({ recovered, position }) => {
        if (since) this.ctx.metrics.recoveries.inc({ outcome: recovered ? 'recovered' : 'lost' });
        if (!byServer) this.reply(id, since ? { op: 'ok', recovered, position } : { op: 'ok', position });
      });
    } catch (err) {
      if (this.subs.get(topic) === sub) this.subs.delete(topic);
      throw err instanceof GatewayError ? err : new GatewayError('serverError', `subscribe failed: broker unavailable (${(err as Error).message})`, 503);
    }
    if (this.closed) await this.ctx.fanout.remove(topic, sub);
  }

  private async unsubscribe(topic: string): Promise<void> {
    const sub = this.subs.get(topic);
    if (!sub) return;
    this.subs.delete(topic);
    await this.ctx.fanout.remove(topic, sub);
  }

  grant(topic: string): void {
    this.granted.add(topic);
  }

  async serverSubscribe(topic: string): Promise<void> {
    this.grant(topic);
    await this.subscribe(topic, undefined, undefined, true);
  }

  async serverUnsubscribe(topic: string): Promise<void> {
    this.granted.delete(topic);
    await this.unsubscribe(topic);
  }

  disconnect(reason: 'drain' | 'policy' | 'auth-expired', afterMs = 0): void {
    if (this.closed) return;
    if (reason === 'drain') {
      this.send(JSON.stringify({ op: 'reconnect', reason: 'drain', afterMs }));
      this.close(CLOSE_DRAIN, 'server draining');
    } else if (reason === 'auth-expired') {
      this.close(CLOSE_AUTH_EXPIRED, 'access token expired');
    } else {
      this.close(CLOSE_POLICY, 'disconnected by the server');
    }
  }

  private close(code: number, reason: string): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    this.ws.close(code, reason);
    // Do not wait forever for the client's close frame.
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }

  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  heartbeat(): void {
    if (!this.alive) {
      this.ws.terminate();
      return;
    }
    this.alive = false;
    try {
      this.ws.ping();
    } catch {
      /* socket already closing */
    }
  }

  private onClose(code: number): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiryTimer);
    this.ctx.registry.remove(this);
    this.ctx.metrics.connections.dec({ protocol: 'native' });
    this.ctx.metrics.connectionsClosed.inc({ protocol: 'native', code: String(code) });
    for (const [topic, sub] of this.subs) void this.ctx.fanout.remove(topic, sub);
    this.subs.clear();
  }
}
