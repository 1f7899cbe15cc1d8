/**
 * The Broker: where publications are ordered, kept for recovery and fanned out
 * to every gateway node. Two implementations live side by side:
 * `broker-memory.ts` (embedded, one process) and `broker-redis.ts`.
 * The same conformance suite (test/integration/broker-conformance.test.ts)
 * runs against both.
 */

/** A position in a topic's stream. The epoch changes when history was lost. */
export interface StreamPosition {
  offset: string;
  epoch: string;
}

/** One event as the broker delivers it to a node. */
export interface Publication {
  topic: string;
  event: string;
  offset: string;
  epoch: string;
  /** The event's data as JSON text, exactly as published (serialised once). */
  dataJson: string;
}

export interface PublishRequest {
  topic: string;
  event: string;
  /** JSON text of the data. */
  dataJson: string;
  idempotencyKey?: string;
}

export interface HistoryResult {
  /** Current position of the stream (last offset, current epoch). */
  position: StreamPosition;
  /** Kept events after the requested position, oldest first. */
  publications: Publication[];
  /**
   * False when the requested position cannot be continued exactly: the epoch
   * changed, or events after it were already trimmed from the kept history.
   */
  recoverable: boolean;
}

/** A route for client requests: `bifrost up` registers `sync` with prefix `/`. */
export interface ServiceDefinition {
  name: string;
  upstream: string;
  prefixes: string[];
  updatedAt?: string;
}

/** A gateway node as it announces itself in the registry. */
export interface NodeInfo {
  id: string;
  url: string;
  privateUrl?: string;
  connections: number;
  loadFactor: number;
  dimensions: Record<string, number>;
  draining: boolean;
  startedAt: string;
  lastSeen: string;
}

/** Messages nodes send each other (socket operations on behalf of services, cache invalidation). */
export interface ControlMessage {
  type: 'subscribe' | 'unsubscribe' | 'disconnect' | 'services-changed';
  userId?: string;
  connectionId?: string;
  topics?: string[];
  reconnect?: boolean;
}

export type PublicationHandler = (pub: Publication) => void;
export type ControlHandler = (msg: ControlMessage) => void;

export interface Broker {
  readonly kind: 'memory' | 'redis';
  /** Appends to the topic's stream and fans out to every node, atomically. */
  publish(req: PublishRequest): Promise<StreamPosition>;
  /** Kept events after `since` (all kept events when `since` is undefined). */
  history(topic: string, since?: StreamPosition, limit?: number): Promise<HistoryResult>;
  /**
   * Starts delivering the topic's live publications to `handler` on this node.
   * Resolves once delivery is active, so a history read made afterwards
   * overlaps the live stream (the caller removes the duplicates by offset).
   * Reference counted: one underlying subscription per topic per node.
   */
  subscribe(topic: string, handler: PublicationHandler): Promise<void>;
  unsubscribe(topic: string, handler: PublicationHandler): Promise<void>;
  /** Broadcast to every node (including this one). */
  publishControl(msg: ControlMessage): Promise<void>;
  onControl(handler: ControlHandler): void;

  putService(def: ServiceDefinition): Promise<ServiceDefinition>;
  getService(name: string): Promise<ServiceDefinition | undefined>;
  listServices(): Promise<ServiceDefinition[]>;
  deleteService(name: string): Promise<boolean>;

  /** Announces this node (heartbeat) with a time to live. */
  announceNode(info: NodeInfo, ttlMs: number): Promise<void>;
  removeNode(id: string): Promise<void>;
  listNodes(): Promise<NodeInfo[]>;

  /** Fires when the broker's backing store becomes unreachable or comes back. */
  onStatus(handler: (status: 'up' | 'down', err?: Error) => void): void;
  /** Resolves once the broker can take work. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export class BrokerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerUnavailableError';
  }
}

/** Compares two offsets ("<ms>-<seq>" stream ids, or plain integers). */
export function compareOffsets(a: string, b: string): number {
  const ia = a.indexOf('-');
  const ib = b.indexOf('-');
  const ha = ia < 0 ? Number(a) : Number(a.slice(0, ia));
  const hb = ib < 0 ? Number(b) : Number(b.slice(0, ib));
  if (ha !== hb) return ha < hb ? -1 : 1;
  const la = ia < 0 ? 0 : Number(a.slice(ia + 1));
  const lb = ib < 0 ? 0 : Number(b.slice(ib + 1));
  return la === lb ? 0 : la < lb ? -1 : 1;
}

/** Broker limits, each with its default in one place. */
export interface BrokerOptions {
  /** Key and channel prefix (tests use a unique one). Default `bifrost:`. */
  prefix?: string;
  /** Events kept per topic for recovery. Default 1000. */
  historySize?: number;
  /** How long events are kept for recovery, ms. Default 5 minutes. */
  historyTtlMs?: number;
  /** How long an idempotency key suppresses duplicates, ms. Default 10 minutes. */
  idempotencyTtlMs?: number;
  /** How long a topic's stream (its epoch and position) lives without publishes, ms. Default 24 h. */
  streamKeyTtlMs?: number;
}

export const BROKER_DEFAULTS = {
  prefix: 'bifrost:',
  historySize: 1000,
  historyTtlMs: 5 * 60_000,
  idempotencyTtlMs: 10 * 60_000,
  streamKeyTtlMs: 24 * 3600_000,
} as const satisfies Required<BrokerOptions>;
