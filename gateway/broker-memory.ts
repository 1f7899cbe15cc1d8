/**
 * The embedded broker: everything in this process. It is the default when
 * REDIS_URL is unset and serves exactly one gateway process.
 */
import { randomBytes } from 'node:crypto';
import {
  BROKER_DEFAULTS,
  compareOffsets,
  type Broker,
  type BrokerOptions,
  type ControlHandler,
  type ControlMessage,
  type HistoryResult,
  type NodeInfo,
  type Publication,
  type PublicationHandler,
  type PublishRequest,
  type ServiceDefinition,
  type StreamPosition,
} from './broker.ts';

interface TopicStream {
  epoch: string;
  seq: number;
  /** Last publish (or creation), ms: a stream idle for `streamKeyTtlMs` is dropped like the Redis stream key. */
  touchedAt: number;
  /** Highest offset ever trimmed away (0 = none). */
  trimmedUpTo: number;
  entries: { pub: Publication; at: number }[];
}

/**
 * A fresh random stream epoch (48 bits, 12 hex digits). The Redis broker passes
 * one to every publish, for the case where the stream turns out to be new, so
 * this is on the publish path. The random bytes come from a pool refilled 256
 * epochs at a time: one `randomBytes` call (a getrandom syscall) per publish
 * took a fifth of the CPU of a publish loop against a local Redis.
 */
const EPOCH_BYTES = 6;
let epochPool = Buffer.alloc(0);
let epochPos = 0;
export function newEpoch(): string {
  if (epochPos + EPOCH_BYTES > epochPool.length) {
    epochPool = randomBytes(EPOCH_BYTES * 256);
    epochPos = 0;
  }
  epochPos += EPOCH_BYTES;
  return epochPool.toString('hex', epochPos - EPOCH_BYTES, epochPos);
}

/** Expired streams and idempotency keys are looked for at most this often, ms. */
const SWEEP_INTERVAL_MS = 60_000;

export class MemoryBroker implements Broker {
  readonly kind = 'memory' as const;
  private readonly opts: Required<BrokerOptions>;
  private lastSweep = Date.now();
  private readonly streams = new Map<string, TopicStream>();
  private readonly handlers = new Map<string, Set<PublicationHandler>>();
  private readonly controlHandlers: ControlHandler[] = [];
  private readonly idempotency = new Map<string, { pos: StreamPosition; expires: number }>();
  private readonly services = new Map<string, ServiceDefinition>();
  private readonly nodes = new Map<string, { info: NodeInfo; expires: number }>();

  constructor(opts: BrokerOptions = {}) {
    this.opts = { ...BROKER_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  }

  private stream(topic: string): TopicStream {
    let s = this.streams.get(topic);
    if (!s) {
      s = { epoch: newEpoch(), seq: 0, touchedAt: Date.now(), trimmedUpTo: 0, entries: [] };
      this.streams.set(topic, s);
    }
    return s;
  }

  /**
   * Drops streams nobody published to for `streamKeyTtlMs` and that no local
   * subscriber holds (their kept events expired long before: historyTtlMs is
   * shorter), and expired idempotency keys. Without it every topic ever
   * published or read would stay in memory for the life of the process.
   */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    const idleBefore = now - this.opts.streamKeyTtlMs;
    for (const [topic, s] of this.streams) if (s.touchedAt <= idleBefore && !this.handlers.has(topic)) this.streams.delete(topic);
    this.sweepIdempotency(now);
  }

  /** Number of topic streams kept (tests, metrics). */
  streamCount(): number {
    return this.streams.size;
  }

  private trim(s: TopicStream, now: number): void {
    const minAt = now - this.opts.historyTtlMs;
    let drop = 0;
    while (drop < s.entries.length && (s.entries.length - drop > this.opts.historySize || s.entries[drop]!.at < minAt)) drop++;
    if (drop > 0) {
      s.trimmedUpTo = Number(s.entries[drop - 1]!.pub.offset);
      s.entries.splice(0, drop);
    }
  }

  async publish(req: PublishRequest): Promise<StreamPosition> {
    const now = Date.now();
    this.sweep(now);
    if (req.idempotencyKey) {
      const key = `${req.topic}\u0000${req.idempotencyKey}`;
      const seen = this.idempotency.get(key);
      if (seen && seen.expires > now) return seen.pos;
    }
    const s = this.stream(req.topic);
    s.touchedAt = now;
    s.seq += 1;
    const pub: Publication = { topic: req.topic, event: req.event, offset: String(s.seq), epoch: s.epoch, dataJson: req.dataJson };
    s.entries.push({ pub, at: now });
    this.trim(s, now);
    const pos = { offset: pub.offset, epoch: s.epoch };
    if (req.idempotencyKey) {
      this.idempotency.set(`${req.topic}\u0000${req.idempotencyKey}`, { pos, expires: now + this.opts.idempotencyTtlMs });
      if (this.idempotency.size > 100_000) this.sweepIdempotency(now);
    }
    const hs = this.handlers.get(req.topic);
    // The event is stored: a failing subscriber must not turn the publish into an error (a retry would duplicate it).
    if (hs)
      for (const h of hs) {
        try {
          h(pub);
        } catch {
          /* the subscriber's own failure; TopicFanout reports per-sink failures */
        }
      }
    return pos;
  }

  private sweepIdempotency(now: number): void {
    for (const [k, v] of this.idempotency) if (v.expires <= now) this.idempotency.delete(k);
  }

  async history(topic: string, since?: StreamPosition, limit = this.opts.historySize): Promise<HistoryResult> {
    this.sweep(Date.now());
    const s = this.streams.get(topic);
    if (!s) {
      // Nothing was ever kept: a client that had a position lost its history.
      const fresh = this.stream(topic);
      return { position: { offset: '0', epoch: fresh.epoch }, publications: [], recoverable: since === undefined };
    }
    this.trim(s, Date.now());
    const position = { offset: String(s.seq), epoch: s.epoch };
    if (!since) return { position, publications: s.entries.slice(-limit).map((e) => e.pub), recoverable: true };
    const recoverable = since.epoch === s.epoch && Number(since.offset) >= s.trimmedUpTo && Number(since.offset) <= s.seq;
    if (!recoverable) return { position, publications: [], recoverable: false };
    const after = s.entries.filter((e) => compareOffsets(e.pub.offset, since.offset) > 0).slice(0, limit);
    return { position, publications: after.map((e) => e.pub), recoverable: true };
  }

  async subscribe(topic: string, handler: PublicationHandler): Promise<void> {
    let hs = this.handlers.get(topic);
    if (!hs) this.handlers.set(topic, (hs = new Set()));
    hs.add(handler);
  }

  async unsubscribe(topic: string, handler: PublicationHandler): Promise<void> {
    const hs = this.handlers.get(topic);
    if (!hs) return;
    hs.delete(handler);
    if (hs.size === 0) this.handlers.delete(topic);
  }

  async publishControl(msg: ControlMessage): Promise<void> {
    for (const h of this.controlHandlers) {
      try {
        h(msg);
      } catch {
        /* one handler's failure must not stop the others, nor fail the sender */
      }
    }
  }

  onControl(handler: ControlHandler): void {
    this.controlHandlers.push(handler);
  }

  async putService(def: ServiceDefinition): Promise<ServiceDefinition> {
    const stored = { ...def, updatedAt: new Date().toISOString() };
    this.services.set(def.name, stored);
    return stored;
  }
  async getService(name: string): Promise<ServiceDefinition | undefined> {
    return this.services.get(name);
  }
  async listServices(): Promise<ServiceDefinition[]> {
    return [...this.services.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  async deleteService(name: string): Promise<boolean> {
    return this.services.delete(name);
  }

  async announceNode(info: NodeInfo, ttlMs: number): Promise<void> {
    this.nodes.set(info.id, { info, expires: Date.now() + ttlMs });
  }
  async removeNode(id: string): Promise<void> {
    this.nodes.delete(id);
  }
  async listNodes(): Promise<NodeInfo[]> {
    const now = Date.now();
    return [...this.nodes.values()].filter((n) => n.expires > now).map((n) => n.info);
  }

  onStatus(): void {
    // Memory never goes away.
  }
  async ready(): Promise<void> {}
  async close(): Promise<void> {
    this.handlers.clear();
  }
}
