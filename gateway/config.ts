/**
 * Every option of a gateway node, with its default in one place.
 * `resolveGatewayOptions` checks them once; the rest of the code trusts them.
 */
import { randomBytes } from 'node:crypto';
import type { Broker } from './broker.ts';

export const DEV_SERVICE_TOKEN = 'bifrost-dev-service-token';

/** Whether these options select the Redis broker (single, Sentinel or Cluster); otherwise the embedded one. */
export function usesRedisBroker(o: Pick<GatewayOptions, 'redisUrl' | 'redisSentinels' | 'redisClusterNodes'>): boolean {
  return Boolean(o.redisUrl || o.redisSentinels?.length || o.redisClusterNodes?.length);
}

export interface GatewayOptions {
  /** Public gateway port (`/ws`, `/socket.io/`, probes). 0 = random. Default BIFROST_GATEWAY_PORT or 8080. */
  port?: number;
  /** Private API port. 0 = random. Default BIFROST_PRIVATE_PORT or 8081. */
  privatePort?: number;
  /** Public bind address. Default 0.0.0.0. */
  host?: string;
  /** Private API bind address. Default 127.0.0.1. */
  privateHost?: string;
  /** URL clients use to reach this node (announced in the node registry). Default http://127.0.0.1:<port>. */
  publicUrl?: string;
  /** Node id in the registry and logs. Default `gw-<random>`. */
  nodeId?: string;
  /** HS256 secret of client tokens. */
  tokenSecret?: string;
  /** Bearer token of the private API. */
  serviceToken?: string;
  /** A broker to use; otherwise built from redisUrl / sentinels, else the memory broker. */
  broker?: Broker;
  redisUrl?: string;
  redisSentinels?: { host: string; port: number }[];
  redisSentinelName?: string;
  /** Redis Cluster seed nodes (REDIS_CLUSTER_NODES): sharded pub/sub, one shard per topic. */
  redisClusterNodes?: { host: string; port: number }[];
  /** Key prefix in Redis. Default `bifrost:`. */
  redisPrefix?: string;
  /** Recovery history kept per topic: events and age. Defaults 1000 and 5 min. */
  historySize?: number;
  historyTtlMs?: number;
  /** Largest inbound frame; bigger closes the socket with 1009. Default 64 KiB. */
  maxFrameBytes?: number;
  /**
   * Largest legacy (socket.io) message. Default 1 MB, socket.io's and so
   * Sails' own default: unchanged clients already send that much to Sync.
   */
  maxLegacyMessageBytes?: number;
  /** Unsent bytes a socket may hold before it is closed with 4008. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Per-connection operations per second and burst before throttleError. Defaults 100 and 200. */
  opRatePerSec?: number;
  opBurst?: number;
  /** Most topics one connection may hold. Default 1000. */
  maxTopicsPerConnection?: number;
  /** SIGTERM drain window: reconnect frames are spread over it. Default 30 s. */
  drainWindowMs?: number;
  /** Upstream call timeout for client requests. Default 10 s. */
  upstreamTimeoutMs?: number;
  /** How long a node reuses the service table it read from the broker. Default 1 s. */
  serviceCacheMs?: number;
  /** Largest upstream response body relayed to a client. Default 8 MiB. */
  maxUpstreamResponseBytes?: number;
  /** WebSocket ping interval; a socket that misses one pong is closed. Default 25 s. */
  pingIntervalMs?: number;
  /** Node registry heartbeat and time to live. Defaults 2 s and 6 s. */
  nodeHeartbeatMs?: number;
  nodeTtlMs?: number;
  /** Load factor targets (see load-factor.ts). */
  load?: Partial<LoadTargets>;
  /** Test/drill only: a fixed ratio added to one load dimension. */
  loadInflate?: Partial<Record<keyof LoadTargets, number>>;
  /** pino log level. Default `info` (`silent` in tests). */
  logLevel?: string;
}

export interface LoadTargets {
  /** CPU share of one core used by the process, 0..1. Default 0.85. */
  cpu: number;
  /** Heap used, bytes. Default 1.5 GiB. */
  heap: number;
  /** Resident set size, bytes. Default 3 GiB. */
  rss: number;
  /** Open client connections. Default 50,000. */
  connections: number;
  /** Event-loop delay p99, ms. Default 100. */
  eventLoopDelay: number;
  /** Bytes queued to clients and not yet sent. Default 256 MiB. */
  outboundBuffered: number;
}

export const LOAD_TARGET_DEFAULTS: LoadTargets = {
  cpu: 0.85,
  heap: 1.5 * 1024 ** 3,
  rss: 3 * 1024 ** 3,
  connections: 50_000,
  eventLoopDelay: 100,
  outboundBuffered: 256 * 1024 ** 2,
};

export type ResolvedGatewayOptions = Required<
  Omit<GatewayOptions, 'broker' | 'redisUrl' | 'redisSentinels' | 'redisSentinelName' | 'redisClusterNodes' | 'publicUrl' | 'load' | 'loadInflate'>
> & {
  redisClusterNodes?: { host: string; port: number }[];
  broker?: Broker;
  redisUrl?: string;
  redisSentinels?: { host: string; port: number }[];
  redisSentinelName?: string;
  publicUrl?: string;
  load: LoadTargets;
  loadInflate: Partial<Record<keyof LoadTargets, number>>;
};

function envPort(name: string, dflt: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? dflt : Number(v);
}

/** Parses `host:port,host:port` (REDIS_SENTINELS). */
export function parseHostList(list: string): { host: string; port: number }[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((hp) => {
      const i = hp.lastIndexOf(':');
      const port = Number(hp.slice(i + 1));
      if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`invalid host:port "${hp}" (expected host:port,host:port)`);
      return { host: hp.slice(0, i), port };
    });
}

export function resolveGatewayOptions(o: GatewayOptions = {}): ResolvedGatewayOptions {
  const r: ResolvedGatewayOptions = {
    port: o.port ?? envPort('BIFROST_GATEWAY_PORT', 8080),
    privatePort: o.privatePort ?? envPort('BIFROST_PRIVATE_PORT', 8081),
    host: o.host ?? '0.0.0.0',
    privateHost: o.privateHost ?? '127.0.0.1',
    publicUrl: o.publicUrl,
    nodeId: o.nodeId ?? `gw-${randomBytes(3).toString('hex')}`,
    tokenSecret: o.tokenSecret ?? '',
    serviceToken: o.serviceToken ?? '',
    broker: o.broker,
    redisUrl: o.redisUrl,
    redisSentinels: o.redisSentinels,
    redisSentinelName: o.redisSentinelName,
    redisClusterNodes: o.redisClusterNodes,
    redisPrefix: o.redisPrefix ?? 'bifrost:',
    historySize: o.historySize ?? 1000,
    historyTtlMs: o.historyTtlMs ?? 5 * 60_000,
    maxFrameBytes: o.maxFrameBytes ?? 64 * 1024,
    maxLegacyMessageBytes: o.maxLegacyMessageBytes ?? 1e6,
    maxBufferedBytes: o.maxBufferedBytes ?? 1024 * 1024,
    opRatePerSec: o.opRatePerSec ?? 100,
    opBurst: o.opBurst ?? 200,
    maxTopicsPerConnection: o.maxTopicsPerConnection ?? 1000,
    drainWindowMs: o.drainWindowMs ?? 30_000,
    upstreamTimeoutMs: o.upstreamTimeoutMs ?? 10_000,
    serviceCacheMs: o.serviceCacheMs ?? 1000,
    maxUpstreamResponseBytes: o.maxUpstreamResponseBytes ?? 8 * 1024 * 1024,
    pingIntervalMs: o.pingIntervalMs ?? 25_000,
    nodeHeartbeatMs: o.nodeHeartbeatMs ?? 2000,
    nodeTtlMs: o.nodeTtlMs ?? 6000,
    load: { ...LOAD_TARGET_DEFAULTS, ...o.load },
    loadInflate: o.loadInflate ?? {},
    logLevel: o.logLevel ?? 'info',
  };
  const positive: (keyof ResolvedGatewayOptions)[] = [
    'maxFrameBytes', 'maxLegacyMessageBytes', 'maxBufferedBytes', 'opRatePerSec', 'opBurst', 'maxTopicsPerConnection', 'drainWindowMs',
    'upstreamTimeoutMs', 'serviceCacheMs', 'maxUpstreamResponseBytes', 'pingIntervalMs', 'nodeHeartbeatMs', 'nodeTtlMs', 'historySize', 'historyTtlMs',
  ];
  for (const k of positive) {
    const v = r[k] as number;
    if (!Number.isFinite(v) || v <= 0) throw new Error(`gateway option ${k} must be a positive number, got ${String(v)}`);
  }
  for (const k of ['port', 'privatePort'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 0 || r[k] > 65535) throw new Error(`gateway option ${k} must be a port number 0..65535, got ${String(r[k])}`);
  }
  if (!r.tokenSecret) throw new Error('gateway option tokenSecret is required');
  if (!r.serviceToken) throw new Error('gateway option serviceToken is required');
  return r;
}

/** The private API's service token from the environment, warning loudly when the dev default is used. */
export function serviceTokenFromEnv(log: { warn: (msg: string) => void } = console): string {
  const s = process.env.BIFROST_SERVICE_TOKEN;
  if (s) return s;
  log.warn('BIFROST_SERVICE_TOKEN is not set: the private API accepts the built-in development token. Never run this in production.');
  return DEV_SERVICE_TOKEN;
}
