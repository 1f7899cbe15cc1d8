/** One native `/ws` client: frames in, frames out, its subscriptions and limits. */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';
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
  peekFrameId,
  type ClientFrame,
  type FrameId,
} from './native-protocol.ts';
import type { Expiring, ExpiryWheel } from './expiry-wheel.ts';
import { TokenBucket } from './rate-limiter.ts';
import { TopicSubscription } from './topic-subscription.ts';
import type { AccessClaims } from './token.ts';
import type { StreamPosition } from './broker.ts';

const WS_OPEN = 1;

/**
 * Event frames, serialised and framed once per event per node. A server frame
 * is not masked, so the WebSocket bytes (header + UTF-8 payload) are the same
 * for every subscriber: they are built once and the same Buffer is written to
 * each socket. The one-entry cache is keyed by the frame string, which the
 * fan-out builds once per event and hands to every subscriber, so the check is
 * almost always a pointer comparison.
 */
let lastFrameText: string | undefined;
let lastFrameWire: Buffer | undefined;
export function wireTextFrame(text: string): Buffer {
  if (text === lastFrameText) return lastFrameWire!;
  const len = Buffer.byteLength(text);
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const buf = Buffer.allocUnsafe(head + len);
  buf[0] = 0x81; // FIN + text
  if (head === 2) buf[1] = len;
  else if (head === 4) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
  } else {
    buf[1] = 127;
    buf.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    buf.writeUInt32BE(len >>> 0, 6);
  }
  buf.write(text, head, 'utf8');
  lastFrameText = text;
  lastFrameWire = buf;
  return buf;
}

/**
 * Write coalescing: event frames queued to a socket during one turn of the
 * event loop are written together when the turn's I/O is done (setImmediate):
 * one write for one frame, one writev (cork/uncork) for several. Under load a
 * turn carries more Redis messages, so batching grows with the load and costs
 * no latency when idle.
 */
// A connection is listed when its first frame of the turn is queued (again if
// a reply flushed it in between: flushing an empty queue does nothing). Two
// arrays take turns so a flush allocates nothing.
let dirty: NativeConnection[] = [];
let spare: NativeConnection[] = [];
let flushScheduled = false;
const NATIVE = { protocol: 'native' } as const;
function flushDirty(): void {
  flushScheduled = false;
  const batch = dirty;
  dirty = spare;
  // One metric update per gateway per flush, not one per socket.
  let counted: GatewayContext | undefined;
  let events = 0;
  for (const c of batch) {
    const n = c.flushEvents();
    if (n === 0) continue;
    if (c.ctx !== counted) {
      if (counted && events) counted.metrics.eventsDelivered.inc(NATIVE, events);
      counted = c.ctx;
      events = 0;
    }
    events += n;
  }
  if (counted && events) counted.metrics.eventsDelivered.inc(NATIVE, events);
  batch.length = 0;
  spare = batch;
}
function markDirty(c: NativeConnection): void {
  dirty.push(c);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushDirty);
  }
}

/** What the native endpoint shares with its connections. */
export interface NativeHost {
  readonly expiries: ExpiryWheel;
}

/**
 * A copy of a string in one flat piece. `randomUUID()` returns a tree of
 * concatenated pieces (about 500 bytes of heap for 36 characters), and a token
 * cut out of the request URL keeps the whole URL alive: both are held for the
 * connection's lifetime.
 */
function flatCopy(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

const NO_GRANTS: ReadonlySet<string> = new Set();

/**
 * The `ws` socket class of the native endpoint (WebSocketServer's `WebSocket`
 * option). Its events go straight to its connection: `emit` calls the
 * connection for `message`, `pong`, `close` and `error` instead of looking up
 * listeners. An idle socket then holds no listener at all; with four
 * registered per socket, the emitter's listener table alone was ~100 B more
 * per connection (a heap snapshot of 3,000 idle sockets). Anything else
 * (and any listener added with `on`) takes EventEmitter's path as usual.
 */
export class ConnSocket extends WebSocket {
  conn: NativeConnection | undefined = undefined;

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const conn = this.conn;
    if (conn) {
      switch (event) {
        case 'message':
          conn.onMessage(args[0] as RawData, args[1] as boolean);
          return true;
        case 'pong':
          conn.alive = true;
          return true;
        case 'close':
          conn.onClose(args[0] as number);
          return super.emit(event, ...args);
        case 'error':
          conn.onSocketError(args[0] as Error);
          return true;
      }
    }
    return super.emit(event, ...args);
  }
}

export class NativeConnection implements ClientConnection, Expiring {
  readonly id = flatCopy(randomUUID());
  get protocol(): 'native' {
    return 'native';
  }
  /**
   * Per-connection state is created on first use (an idle connection holds no
   * Map, Set, bucket or array of its own): idle sockets are most of a node's
   * memory.
   */
  private subs: Map<string, TopicSubscription> | undefined;
  private granted: Set<string> | undefined;
  private bucket: TokenBucket | undefined;
  private readonly token: string;
  private readonly expiryKey: number;
  private closed = false;
  /** A close was started: nothing more is sent. */
  private closing = false;
  /** Set by the heartbeat: false until the next pong. */
  alive = true;
  /** Event frames waiting for this turn's flush (see markDirty); the array is reused. */
  private queuedFirst: Buffer | undefined;
  private queuedMore: Buffer[] | undefined;
  private queuedBytes = 0;
  private queuedEvents = 0;

  constructor(
    readonly ctx: GatewayContext,
    private readonly ws: ConnSocket,
    readonly claims: AccessClaims,
    token: string,
    private readonly host: NativeHost,
  ) {
    this.token = flatCopy(token);
    this.expiryKey = host.expiries.add(this, claims.exp);
    // From here on the socket's message, pong, close and error events come to this connection (ConnSocket.emit).
    ws.conn = this;
  }

  /** A socket error: ws closes the socket itself (1009 for an oversized frame, 1002 for a protocol error). */
  onSocketError(err: Error): void {
    this.ctx.metrics.framesRejected.inc({ protocol: 'native', reason: (err as Error & { code?: string }).code ?? 'socket-error' });
    this.ctx.log.debug({ err, conn: this.id }, 'native socket error');
  }

  /** The access token expired (called by the endpoint's expiry wheel). */
  expire(): void {
    this.disconnect('auth-expired');
  }

  /** Sends a frame unless the client is too far behind, in which case it is closed with 4008. */
  send(frame: string): void {
    // Queued events go first: frames leave in the order they were sent.
    if (this.queuedFirst) this.ctx.metrics.eventsDelivered.inc(NATIVE, this.flushEvents());
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

  /**
   * Sends an event frame through the coalescing path: the frame's wire bytes
   * are shared by every subscriber on this node and written to the socket at
   * the end of the turn. Same slow-consumer rule as send().
   */
  sendEvent(frame: string): void {
    if (this.closed || this.closing) return;
    // The frames are written to the TCP socket directly. That is sound because
    // the native endpoint never compresses and only sends text frames, so the
    // ws sender never queues; anything else takes the ordinary path.
    const socket = (this.ws as unknown as { _socket?: Socket })._socket;
    if (this.ws.readyState !== WS_OPEN || !socket) {
      this.send(frame);
      this.ctx.metrics.eventsDelivered.inc(NATIVE);
      return;
    }
    const wire = wireTextFrame(frame);
    if (this.ws.bufferedAmount + this.queuedBytes + wire.length > this.ctx.opts.maxBufferedBytes) {
      // After what was queued is written, send() closes it as a slow consumer (or sends the frame if it drained).
      this.send(frame);
      if (!this.closing) this.ctx.metrics.eventsDelivered.inc(NATIVE);
      return;
    }
    if (!this.queuedFirst) {
      this.queuedFirst = wire;
      markDirty(this);
    } else (this.queuedMore ??= []).push(wire);
    this.queuedBytes += wire.length;
    this.queuedEvents++;
  }

  /** Writes the queued event frames (one write, or one writev for several); returns how many were written. */
  flushEvents(): number {
    const first = this.queuedFirst;
    if (!first) return 0;
    const events = this.queuedEvents;
    this.queuedFirst = undefined;
    this.queuedBytes = 0;
    this.queuedEvents = 0;
    const socket = (this.ws as unknown as { _socket?: Socket })._socket;
    const more = this.queuedMore;
    if (this.closed || this.closing || this.ws.readyState !== WS_OPEN || !socket || socket.destroyed) {
      if (more) more.length = 0;
      return 0;
    }
    if (!more || more.length === 0) socket.write(first);
    else {
      socket.cork();
      socket.write(first);
      for (const b of more) socket.write(b);
      socket.uncork();
      more.length = 0;
    }
    return events;
  }

  private reply(id: FrameId | undefined, body: Record<string, unknown>): void {
    this.send(JSON.stringify(id === undefined ? body : { id, ...body }));
  }

  private fail(id: FrameId | undefined, err: unknown): void {
    const e = err instanceof GatewayError ? err : new GatewayError('serverError', (err as Error)?.message ?? 'internal error');
    if (!(err instanceof GatewayError)) this.ctx.log.error({ err, conn: this.id }, 'native frame failed');
    this.send(errorFrame(id, e.code, e.message));
  }

  /** A frame from the client (ConnSocket.emit). */
  onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    if (!(this.bucket ??= new TokenBucket(this.ctx.opts.opRatePerSec, this.ctx.opts.opBurst)).take()) {
      this.ctx.metrics.framesRejected.inc({ protocol: 'native', reason: 'throttle' });
      this.send(errorFrame(peekFrameId(data), 'throttleError', `more than ${this.ctx.opts.opRatePerSec} operations per second (burst ${this.ctx.opts.opBurst})`));
      return;
    }
    if (isBinary) {
      this.ctx.metrics.framesRejected.inc({ protocol: 'native', reason: 'binary' });
      this.send(errorFrame(peekFrameId(data), 'badRequest', 'binary frames are not supported: send JSON text frames'));
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
    if (!byServer && !this.ctx.policy(this.claims, topic, this.granted ?? NO_GRANTS)) {
      throw new GatewayError('forbiddenError', `not allowed to subscribe to ${topic}`);
    }
    const subs = (this.subs ??= new Map());
    const existing = subs.get(topic);
    if (existing) {
      // Already subscribed: a re-subscribe with a position restarts the subscription from it.
      if (!since) {
        if (!byServer) this.reply(id, { op: 'ok' });
        return;
      }
      await this.unsubscribe(topic);
    }
    if (subs.size >= this.ctx.opts.maxTopicsPerConnection) {
      throw new GatewayError('badRequest', `a connection may hold at most ${this.ctx.opts.maxTopicsPerConnection} topics`);
    }
    const sub = new TopicSubscription(topic, (ev) => this.sendEvent(ev.frame()));
    subs.set(topic, sub);
    try {
      await sub.start(this.ctx.fanout, this.ctx.broker, since, this.ctx.opts.historySize, ({ recovered, position }) => {
        if (since) this.ctx.metrics.recoveries.inc({ outcome: recovered ? 'recovered' : 'lost' });
        if (!byServer) this.reply(id, since ? { op: 'ok', recovered, position } : { op: 'ok', position });
      });
    } catch (err) {
      if (subs.get(topic) === sub) subs.delete(topic);
      throw err instanceof GatewayError ? err : new GatewayError('serverError', `subscribe failed: broker unavailable (${(err as Error).message})`, 503);
    }
    if (this.closed) await this.ctx.fanout.remove(topic, sub);
  }

  private async unsubscribe(topic: string): Promise<void> {
    const sub = this.subs?.get(topic);
    if (!sub) return;
    this.subs!.delete(topic);
    await this.ctx.fanout.remove(topic, sub);
  }

  grant(topic: string): void {
    (this.granted ??= new Set()).add(topic);
  }

  async serverSubscribe(topic: string): Promise<void> {
    this.grant(topic);
    await this.subscribe(topic, undefined, undefined, true);
  }

  async serverUnsubscribe(topic: string): Promise<void> {
    this.granted?.delete(topic);
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
    if (this.queuedFirst) this.ctx.metrics.eventsDelivered.inc(NATIVE, this.flushEvents());
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

  /** The socket closed (ConnSocket.emit). */
  onClose(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.queuedFirst = undefined;
    this.queuedMore = undefined;
    this.host.expiries.delete(this, this.expiryKey);
    this.ctx.registry.remove(this);
    this.ctx.metrics.connections.dec({ protocol: 'native' });
    this.ctx.metrics.connectionsClosed.inc({ protocol: 'native', code: String(code) });
    if (this.subs) for (const [topic, sub] of this.subs) void this.ctx.fanout.remove(topic, sub);
    this.subs = undefined;
  }
}
