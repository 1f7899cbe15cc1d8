/**
 * The Redis broker. A publish is one Lua script: XADD to the topic's bounded
 * stream (trimmed by count and age) and PUBLISH of the same entry on the
 * topic's channel, so the live order every node sees is the stream's order.
 * Each node holds one Redis subscription per topic with local subscribers.
 *
 * Keys (P = prefix, hash tags keep a topic's keys on one Cluster slot):
 *   P s:{topic}            stream of events (fields v = event, d = data JSON)
 *   P e:{topic}            the stream's epoch (new when the stream was lost)
 *   P i:{topic}:<key>      idempotency key -> "offset|epoch"
 *   P c:{topic}            pub/sub channel, message "offset\nepoch\nevent\ndata"
 *                          (sharded pub/sub, SPUBLISH/SSUBSCRIBE, on Redis Cluster)
 *   P services             hash name -> service definition JSON
 *   P nodes / P nodeinfo   zset id -> expiry, hash id -> node JSON
 *   P control              pub/sub channel for node-to-node control messages
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { newEpoch } from './broker-memory.ts';
import { withTimeout } from './with-timeout.ts';
import {
  BROKER_DEFAULTS,
  BrokerUnavailableError,
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

const PUBLISH_SCRIPT = `
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[8]
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], epoch)
end
if ARGV[9] == '1' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local sep = string.find(seen, '|', 1, true)
    return {string.sub(seen, 1, sep - 1), string.sub(seen, sep + 1), 1}
  end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[4], '*', 'v', ARGV[2], 'd', ARGV[3])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if ARGV[9] == '1' then
  redis.call('SET', KEYS[3], id .. '|' .. epoch, 'PX', ARGV[7])
end
redis.call(ARGV[10], ARGV[1], id .. '\\n' .. epoch .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return {id, epoch, 0}
`;

// Returns {epoch, last id, recoverable flag, entries}. Trimming only removes
// the head of a stream, so a position is recoverable when its entry is still
// there, when it is the stream's last id, or when it is 0-0 and nothing was
// ever trimmed. (XTRIM does not update max-deleted-entry-id, so that field
// cannot be used.)
const HISTORY_SCRIPT = `
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[5]
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], epoch, 'PX', ARGV[6])
end
local last = '0-0'
local added = 0
local len = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4])
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1]
    elseif info[i] == 'entries-added' then added = info[i + 1]
    elseif info[i] == 'length' then len = info[i + 1] end
  end
end
local ok = 1
if ARGV[1] ~= '' then
  if ARGV[2] ~= epoch then ok = 0
  elseif ARGV[1] == last then ok = 1
  elseif ARGV[1] == '0-0' or ARGV[1] == '0' then
    if added ~= len then ok = 0 end
  elseif #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then ok = 0 end
end
local entries = {}
if ok == 1 then
  if ARGV[1] == '' then
    entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[3])
  else
    entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[3])
  end
end
return {epoch, last, ok, entries}
`;

const ANNOUNCE_SCRIPT = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
for _, id in ipairs(gone) do redis.call('HDEL', KEYS[2], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
return #gone
`;

export interface RedisBrokerOptions extends BrokerOptions {
  /** `redis://host:port/db`; ignored when `sentinels` is given. */
  url?: string;
  /** Redis Cluster seed nodes: sharded pub/sub and hash-tagged keys keep a topic on one shard. */
  clusterNodes?: { host: string; port: number }[];
  /** Sentinel-managed Redis: `host:port` list and master name. */
  sentinels?: { host: string; port: number }[];
  sentinelName?: string;
  /** A Redis command not answered within this time fails (publish → 503), ms. Default 5000. */
  commandTimeoutMs?: number;
  /**
   * Replicas that must confirm a publish (Redis WAIT) before it is
   * acknowledged; otherwise the caller gets an error and should retry with
   * the same idempotency key. Default 1 with Sentinel, else 0.
   */
  minReplicas?: number;
  /** How long a publish waits for replica confirmation, ms. Default 1000. */
  replicaAckTimeoutMs?: number;
  /** Called with non-fatal problems (lost gap recovery, bad control messages). */
  onWarning?: (msg: string, err?: unknown) => void;
}

type Entry = [string, string[]];

/** Rejects with `message` when `p` has not settled within `ms` (the timer does not hold the process). */
function fieldsOf(fields: string[]): { v: string; d: string } {
  let v = '';
  let d = 'null';
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 'v') v = fields[i + 1]!;
    else if (fields[i] === 'd') d = fields[i + 1]!;
  }
  return { v, d };
}

const CONTROL_TYPES: ReadonlySet<string> = new Set(['subscribe', 'unsubscribe', 'disconnect', 'services-changed']);

/**
 * A control message as nodes send them. Anyone who can PUBLISH on the
 * control channel can send anything, and every node would act on it: the
 * shape is checked before any handler sees it.
 */
function isControlMessage(m: unknown): m is ControlMessage {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  const r = m as Record<string, unknown>;
  if (typeof r.type !== 'string' || !CONTROL_TYPES.has(r.type)) return false;
  if (r.userId !== undefined && typeof r.userId !== 'string') return false;
  if (r.connectionId !== undefined && typeof r.connectionId !== 'string') return false;
  if (r.reconnect !== undefined && typeof r.reconnect !== 'boolean') return false;
  if (r.topics !== undefined && !(Array.isArray(r.topics) && r.topics.every((t) => typeof t === 'string'))) return false;
  return true;
}

/** Builds ioredis options from a URL or a Sentinel list. */
export function redisConnectionOptions(o: Pick<RedisBrokerOptions, 'url' | 'sentinels' | 'sentinelName' | 'commandTimeoutMs'>): {
  url?: string;
  options: RedisOptions;
} {
  const base: RedisOptions = {
    maxRetriesPerRequest: 2,
    commandTimeout: o.commandTimeoutMs ?? 5000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: false,
  };
  if (o.sentinels?.length) {
    return { options: { ...base, sentinels: o.sentinels, name: o.sentinelName ?? 'mymaster' } };
  }
  return { url: o.url ?? 'redis://127.0.0.1:6379', options: base };
}

interface TopicState {
  handlers: Set<PublicationHandler>;
  subscribed: Promise<void>;
  /** Last offset delivered on this node, for de-duplication and gap recovery. */
  last?: StreamPosition;
  /**
   * The stream's position read just before the channel was subscribed: where
   * gap recovery starts when no live event reached this node yet (a quiet
   * topic). Never used for de-duplication: events after it may still arrive
   * live, and sinks drop what they already have.
   */
  base?: StreamPosition;
  /** While non-null, live messages wait here (gap recovery in progress). */
  buffer: Publication[] | null;
}

export class RedisBroker implements Broker {
  readonly kind = 'redis' as const;
  private readonly opts: Required<Omit<RedisBrokerOptions, 'url' | 'sentinels' | 'sentinelName' | 'onWarning' | 'clusterNodes'>>;
  private readonly cmd: Redis | Cluster;
  private readonly sub: Redis | Cluster;
  /** Redis Cluster: sharded pub/sub (SPUBLISH / SSUBSCRIBE). */
  private readonly sharded: boolean;
  private readonly topics = new Map<string, TopicState>();
  private readonly controlHandlers: ControlHandler[] = [];
  private readonly statusHandlers: ((s: 'up' | 'down', err?: Error) => void)[] = [];
  private readonly warn: (msg: string, err?: unknown) => void;
  private readonly channelPrefix: string;
  private readonly controlChannel: string;
  private subReadyOnce = false;
  /** The subscriber's errors are logged once per outage (reset when it is ready again). */
  private subErrorLogged = false;
  private closed = false;
  private up = true;

  constructor(o: RedisBrokerOptions = {}) {
    this.opts = {
      ...BROKER_DEFAULTS,
      commandTimeoutMs: 5000,
      minReplicas: o.sentinels?.length ? 1 : 0,
      replicaAckTimeoutMs: 1000,
      ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
    } as RedisBroker['opts'];
    this.warn = o.onWarning ?? (() => {});
    const { url, options } = redisConnectionOptions(o);
    // The subscriber never times out commands: SUBSCRIBE replies can lag behind messages.
    const subOptions = { ...options, commandTimeout: undefined, maxRetriesPerRequest: null };
    this.sharded = !!o.clusterNodes?.length;
    if (o.clusterNodes?.length) {
      this.cmd = new Cluster(o.clusterNodes, { redisOptions: options });
      this.sub = new Cluster(o.clusterNodes, { redisOptions: subOptions, shardedSubscribers: true });
    } else {
      this.cmd = url ? new Redis(url, options) : new Redis(options);
      this.sub = url ? new Redis(url, subOptions) : new Redis(subOptions);
    }
    this.channelPrefix = `${this.opts.prefix}c:`;
    this.controlChannel = `${this.opts.prefix}control`;
    this.cmd.defineCommand('bifrostPublish', { numberOfKeys: 3, lua: PUBLISH_SCRIPT });
    this.cmd.defineCommand('bifrostHistory', { numberOfKeys: 2, lua: HISTORY_SCRIPT });
    this.cmd.defineCommand('bifrostAnnounce', { numberOfKeys: 2, lua: ANNOUNCE_SCRIPT });

    this.cmd.on('error', (err: Error) => this.setStatus('down', err));
    this.cmd.on('close', () => this.setStatus('down', new Error('connection to Redis closed')));
    this.cmd.on('ready', () => this.setStatus('up'));
    this.sub.on('error', (err: Error) => {
      if (this.subErrorLogged || this.closed) return;
      this.subErrorLogged = true;
      this.warn('Redis subscriber connection failed: live events stop until it reconnects (further errors are not logged until then)', err);
    });
    this.sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    this.sub.on('smessage', (channel: string, message: string) => this.onMessage(channel, message));
    this.sub.on('ready', () => {
      if (this.subErrorLogged) this.warn('Redis subscriber connection is back: re-subscribing and recovering missed events');
      this.subErrorLogged = false;
      if (this.subReadyOnce) this.recoverAllTopics();
      this.subReadyOnce = true;
    });
    // Cluster: a shard's subscriber connection is replaced inside ioredis (its
    // sharded-subscriber group re-subscribes by itself), and the group says
    // `subscribersReady` when it is done. Replay what the node may have missed
    // meanwhile; delivery drops anything already delivered, so recovering every
    // topic when only one shard dropped is safe.
    if (this.sharded) this.sub.on('subscribersReady', () => this.recoverAllTopics());
    void this.sub.subscribe(this.controlChannel).catch((err) => this.warn('control channel subscribe failed', err));
  }

  /**
   * Runs one Redis call of the registry/control side. Any failure is the
   * broker being unavailable (private API 503, not 500); while the command
   * connection is known to be down it fails at once instead of waiting out
   * the command timeout.
   */
  private async unavailableOnError<T>(what: string, call: () => Promise<T>): Promise<T> {
    if (!this.up) throw new BrokerUnavailableError(`Redis ${what} failed: Redis is unreachable`);
    try {
      return await call();
    } catch (err) {
      throw new BrokerUnavailableError(`Redis ${what} failed: ${(err as Error).message}`);
    }
  }

  private setStatus(s: 'up' | 'down', err?: Error): void {
    if (this.closed || s === (this.up ? 'up' : 'down')) return;
    this.up = s === 'up';
    for (const h of this.statusHandlers) h(s, err);
  }

  private key(kind: 's' | 'e', topic: string): string {
    return `${this.opts.prefix}${kind}:{${topic}}`;
  }

  /** The topic's channel; the hash tag puts it on the same Cluster slot as its stream. */
  private channel(topic: string): string {
    return `${this.channelPrefix}{${topic}}`;
  }

  async publish(req: PublishRequest): Promise<StreamPosition> {
    const now = Date.now();
    const idemKey = `${this.opts.prefix}i:{${req.topic}}:${req.idempotencyKey ?? ''}`;
    let pos: StreamPosition;
    try {
      const r = (await (this.cmd as unknown as { bifrostPublish: (...a: (string | number)[]) => Promise<[string, string, number]> }).bifrostPublish(
        this.key('s', req.topic),
        this.key('e', req.topic),
        idemKey,
        this.channel(req.topic),
        req.event,
        req.dataJson,
        this.opts.historySize,
        `${Math.max(0, now - this.opts.historyTtlMs)}-0`,
        this.opts.streamKeyTtlMs,
        this.opts.idempotencyTtlMs,
        newEpoch(),
        req.idempotencyKey ? '1' : '',
        this.sharded ? 'SPUBLISH' : 'PUBLISH',
      )) as [string, string, number];
      pos = { offset: r[0], epoch: r[1] };
    } catch (err) {
      throw new BrokerUnavailableError(`Redis publish failed: ${(err as Error).message}`);
    }
    if (this.opts.minReplicas > 0 && !this.sharded) {
      let acked = 0;
      try {
        acked = (await this.cmd.wait(this.opts.minReplicas, this.opts.replicaAckTimeoutMs)) as number;
      } catch (err) {
        throw new BrokerUnavailableError(`Redis publish not confirmed by a replica: ${(err as Error).message}; retry with the same idempotencyKey`);
      }
      if (acked < this.opts.minReplicas) {
        throw new BrokerUnavailableError(
          `Redis publish confirmed by ${acked} of ${this.opts.minReplicas} replica(s) within ${this.opts.replicaAckTimeoutMs} ms; retry with the same idempotencyKey`,
        );
      }
    }
    return pos;
  }

  async history(topic: string, since?: StreamPosition, limit = this.opts.historySize): Promise<HistoryResult> {
    let r: [string, string, number, Entry[]];
    try {
      r = (await (this.cmd as unknown as { bifrostHistory: (...a: (string | number)[]) => Promise<unknown> }).bifrostHistory(
        this.key('s', topic),
        this.key('e', topic),
        since?.offset ?? '',
        since?.epoch ?? '',
        limit,
        `${Math.max(0, Date.now() - this.opts.historyTtlMs)}-0`,
        newEpoch(),
        this.opts.streamKeyTtlMs,
      )) as [string, string, number, Entry[]];
    } catch (err) {
      throw new BrokerUnavailableError(`Redis history read failed: ${(err as Error).message}`);
    }
    const [epoch, last, ok, raw] = r;
    const position = { offset: last, epoch };
    if (!ok) return { position, publications: [], recoverable: false };
    const entries = since ? raw : [...raw].reverse();
    const publications = entries.map(([id, fields]) => {
      const { v, d } = fieldsOf(fields);
      return { topic, event: v, offset: id, epoch, dataJson: d };
    });
    return { position, publications, recoverable: true };
  }

  private onMessage(channel: string, message: string): void {
    if (channel === this.controlChannel) {
      let msg: unknown;
      try {
        msg = JSON.parse(message);
      } catch (err) {
        this.warn('ignoring malformed control message (not JSON)', err);
        return;
      }
      if (!isControlMessage(msg)) {
        this.warn(`ignoring malformed control message: ${message.slice(0, 200)}`);
        return;
      }
      for (const h of this.controlHandlers) {
        try {
          h(msg);
        } catch (err) {
          this.warn(`control message handler failed on ${msg.type}`, err);
        }
      }
      return;
    }
    if (!channel.startsWith(this.channelPrefix + '{') || !channel.endsWith('}')) return;
    const topic = channel.slice(this.channelPrefix.length + 1, -1);
    const st = this.topics.get(topic);
    if (!st) return;
    const a = message.indexOf('\n');
    const b = message.indexOf('\n', a + 1);
    const c = message.indexOf('\n', b + 1);
    if (a < 0 || b < 0 || c < 0) return;
    const pub: Publication = {
      topic,
      offset: message.slice(0, a),
      epoch: message.slice(a + 1, b),
      event: message.slice(b + 1, c),
      dataJson: message.slice(c + 1),
    };
    if (st.buffer) st.buffer.push(pub);
    else this.deliver(st, pub);
  }

  /** Delivers in offset order, once: anything at or before the last delivered offset is a duplicate. */
  private deliver(st: TopicState, pub: Publication): void {
    if (st.last && st.last.epoch === pub.epoch && compareOffsets(pub.offset, st.last.offset) <= 0) return;
    st.last = { offset: pub.offset, epoch: pub.epoch };
    for (const h of st.handlers) {
      try {
        h(pub);
      } catch (err) {
        this.warn(`subscriber of ${pub.topic} threw`, err);
      }
    }
  }

  /**
   * After the subscriber connection came back: fetch what this node missed
   * while it was away. ioredis emits 'ready' before it re-sends SUBSCRIBE, so
   * the channels are subscribed again (and acknowledged) first; live messages
   * are held while the streams are read, then delivered after the missed ones.
   */
  private recoverAllTopics(): void {
    const pending: [string, TopicState, StreamPosition][] = [];
    for (const [topic, st] of this.topics) {
      // A topic that delivered nothing live yet on this node recovers from
      // where the stream was when the node subscribed.
      const since = st.last ?? st.base;
      if (!since || st.buffer) continue;
      st.buffer = [];
      pending.push([topic, st, since]);
    }
    if (pending.length === 0) return;
    const release = (st: TopicState) => {
      const buf = st.buffer ?? [];
      st.buffer = null;
      for (const p of buf) this.deliver(st, p);
    };
    this.subscribeChannels(pending.map(([topic]) => this.channel(topic)))
      .then(() =>
        Promise.all(
          pending.map(async ([topic, st, since]) => {
            try {
              let h = await this.history(topic, since);
              if (!h.recoverable) {
                this.warn(`node may have lost events of ${topic} while disconnected from Redis: its last position is no longer in the stream`);
                h = await this.history(topic);
              }
              for (const p of h.publications) this.deliver(st, p);
            } catch (err) {
              this.warn(`gap recovery of ${topic} failed`, err);
            } finally {
              release(st);
            }
          }),
        ),
      )
      .catch((err) => {
        this.warn('re-subscribe after reconnect failed', err);
        for (const [, st] of pending) release(st);
      });
  }

  private async subscribeChannels(channels: string[]): Promise<void> {
    if (!this.sharded) {
      await this.sub.subscribe(...channels);
      return;
    }
    // Sharded channels live on different shards: one SSUBSCRIBE each.
    for (const ch of channels) await this.sub.ssubscribe(ch);
  }

  /**
   * Subscribes the topic's channel on this node. While the subscriber
   * connection is not connected it fails at once, and it never waits longer
   * than the command timeout: ioredis would otherwise hold the SUBSCRIBE in its
   * offline queue until Redis is back, and the client's subscribe (or the
   * request whose answer asked for it) would hang.
   */
  private async openTopic(topic: string, st: TopicState): Promise<void> {
    // Fail fast in an outage (the connection was up before and is not now);
    // at start-up the SUBSCRIBE may wait for the first connection, bounded below.
    if (!this.sharded && (!this.up || (this.subReadyOnce && this.sub.status !== 'ready'))) {
      throw new BrokerUnavailableError(`Redis subscribe failed: Redis is unreachable (subscriber connection ${this.sub.status})`);
    }
    // The stream's position first, then the channel: gap recovery of a topic
    // that is still quiet when the connection drops starts from here (read
    // before the SUBSCRIBE, so nothing published once the channel is live can
    // lie before it). Both steps share one deadline: the command timeout.
    const deadline = Date.now() + this.opts.commandTimeoutMs;
    const pos = await withTimeout(this.history(topic, undefined, 1), this.opts.commandTimeoutMs, `reading the stream position of "${topic}" took over ${this.opts.commandTimeoutMs} ms`);
    st.base = pos.position;
    const ch = this.channel(topic);
    const subscribing = this.subscribeChannels([ch]);
    try {
      await withTimeout(subscribing, Math.max(1, deadline - Date.now()), `SUBSCRIBE not answered within ${this.opts.commandTimeoutMs} ms`);
    } catch (err) {
      // A SUBSCRIBE still queued in ioredis runs when Redis is back: undo it
      // then, unless the topic was subscribed again meanwhile.
      subscribing.then(
        () => {
          if (!this.topics.has(topic) && !this.closed) void this.unsubscribeChannel(ch);
        },
        () => {},
      );
      throw err;
    }
  }

  async subscribe(topic: string, handler: PublicationHandler): Promise<void> {
    let st = this.topics.get(topic);
    if (!st) {
      st = { handlers: new Set(), subscribed: Promise.resolve(), buffer: null };
      this.topics.set(topic, st);
      const s = st;
      st.subscribed = this.openTopic(topic, s).then(
        () => undefined,
        (err: Error) => {
          if (this.topics.get(topic) === s) this.topics.delete(topic);
          throw err instanceof BrokerUnavailableError ? err : new BrokerUnavailableError(`Redis subscribe failed: ${err.message}`);
        },
      );
    }
    st.handlers.add(handler);
    try {
      await st.subscribed;
    } catch (err) {
      st.handlers.delete(handler);
      if (st.handlers.size === 0 && this.topics.get(topic) === st) this.topics.delete(topic);
      throw err;
    }
  }

  async unsubscribe(topic: string, handler: PublicationHandler): Promise<void> {
    const st = this.topics.get(topic);
    if (!st) return;
    st.handlers.delete(handler);
    if (st.handlers.size > 0) return;
    this.topics.delete(topic);
    await this.unsubscribeChannel(this.channel(topic));
  }

  /**
   * Unsubscribes a channel without ever hanging the caller: while Redis is
   * away the UNSUBSCRIBE waits in ioredis's queue (and runs on reconnect, in
   * order with any later SUBSCRIBE); the caller goes on after the command timeout.
   */
  private async unsubscribeChannel(ch: string): Promise<void> {
    const p = (this.sharded ? this.sub.sunsubscribe(ch) : this.sub.unsubscribe(ch)).catch(() => {});
    if (!this.sharded && this.sub.status !== 'ready') return; // queued for the reconnect: do not wait for it
    await withTimeout(p, this.opts.commandTimeoutMs, 'UNSUBSCRIBE not answered').catch(() => {});
  }

  /** Number of topics this node holds a Redis subscription for (metrics, tests). */
  subscribedTopicCount(): number {
    return this.topics.size;
  }

  async publishControl(msg: ControlMessage): Promise<void> {
    await this.unavailableOnError('control publish', () => this.cmd.publish(this.controlChannel, JSON.stringify(msg)));
  }
  onControl(handler: ControlHandler): void {
    this.controlHandlers.push(handler);
  }

  async putService(def: ServiceDefinition): Promise<ServiceDefinition> {
    const stored = { ...def, updatedAt: new Date().toISOString() };
    await this.unavailableOnError('service write', () => this.cmd.hset(`${this.opts.prefix}services`, def.name, JSON.stringify(stored)));
    return stored;
  }
  async getService(name: string): Promise<ServiceDefinition | undefined> {
    const raw = await this.unavailableOnError('service read', () => this.cmd.hget(`${this.opts.prefix}services`, name));
    return raw ? (JSON.parse(raw) as ServiceDefinition) : undefined;
  }
  async listServices(): Promise<ServiceDefinition[]> {
    const all = await this.unavailableOnError('service list', () => this.cmd.hgetall(`${this.opts.prefix}services`));
    return Object.values(all)
      .map((r) => JSON.parse(r) as ServiceDefinition)
      .sort((a, b) => a.name.localeCompare(b.name));
  }
  async deleteService(name: string): Promise<boolean> {
    return (await this.unavailableOnError('service delete', () => this.cmd.hdel(`${this.opts.prefix}services`, name))) > 0;
  }

  async announceNode(info: NodeInfo, ttlMs: number): Promise<void> {
    const now = Date.now();
    await this.unavailableOnError('node heartbeat', () =>
      (this.cmd as unknown as { bifrostAnnounce: (...a: (string | number)[]) => Promise<number> }).bifrostAnnounce(
        `${this.opts.prefix}nodes`,
        `${this.opts.prefix}nodeinfo`,
        info.id,
        now + ttlMs,
        JSON.stringify(info),
        now,
      ),
    );
  }
  async removeNode(id: string): Promise<void> {
    await this.unavailableOnError('node removal', () => this.cmd.multi().zrem(`${this.opts.prefix}nodes`, id).hdel(`${this.opts.prefix}nodeinfo`, id).exec());
  }
  async listNodes(): Promise<NodeInfo[]> {
    const ids = await this.unavailableOnError('node list', () => this.cmd.zrangebyscore(`${this.opts.prefix}nodes`, Date.now(), '+inf'));
    if (ids.length === 0) return [];
    const raws = await this.unavailableOnError('node list', () => this.cmd.hmget(`${this.opts.prefix}nodeinfo`, ...ids));
    return raws.filter((r): r is string => !!r).map((r) => JSON.parse(r) as NodeInfo);
  }

  onStatus(handler: (status: 'up' | 'down', err?: Error) => void): void {
    this.statusHandlers.push(handler);
  }

  async ready(): Promise<void> {
    await this.cmd.ping();
    await this.sub.ping().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.topics.clear();
    this.sub.disconnect();
    await this.cmd.quit().catch(() => this.cmd.disconnect());
  }
}
