/**
 * The compatibility shim, assembled: one public port where unchanged clients
 * already connect (Godserver intercept + socket routing + pass-through to Sync)
 * and one admin port (rollout, drain, metrics).
 *
 *   const shim = await startShim({ port: 3000, adminPort: 9090,
 *     godserverUrl: 'http://127.0.0.1:1337', syncUrl: 'http://127.0.0.1:1337',
 *     bifrostUrls: ['http://127.0.0.1:8080'] });
 *   // clients: GET http://127.0.0.1:3000/godserver/init, then the socket
 *   await shim.close();
 *
 * Every option has its default here, checked once (see `resolveShimOptions`).
 */
import http from 'node:http';
import net from 'node:net';
import { createHmac } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { DEV_TOKEN_SECRET } from '../gateway/token.ts';
import { flagsFilePathFromEnv } from './flags-file.ts';
import { FileFlagSource, LiveFlagSource, type FlagSource, type FlagSourceEvents } from './flag-source.ts';
import { BifrostNodePool, checkDiscoveryUrl, isDiscoveryUrl } from './bifrost-nodes.ts';
import { ConnectionRegistry, Rebalancer, type DrainPolicy } from './connections.ts';
import { ShimMetrics } from './metrics.ts';
import { DecisionStats } from './decision-stats.ts';
import { UpgradeStats } from './upgrade-stats.ts';
import { GodserverIntercept, isGodserverInit } from './godserver.ts';
import { DEFAULT_SAILS_SDK_PARAMS, SocketRouter } from './socket-router.ts';
import { buildAdminApp } from './admin.ts';
import { DEFAULT_ROUTE_TOKEN_TTL_SECONDS } from './route-token.ts';

export { DEV_ADMIN_TOKEN, DEFAULT_SHIM_PORT, DEFAULT_ADMIN_PORT } from './shim-defaults.ts';
import { DEV_ADMIN_TOKEN } from './shim-defaults.ts';

export interface ShimOptions {
  /** Public port (0 = any free port). */
  port: number;
  /** Admin port (0 = any free port). */
  adminPort: number;
  /** Public bind address; default 0.0.0.0. */
  host?: string;
  /** Admin bind address; default 127.0.0.1. */
  adminHost?: string;
  /** Where `GET /godserver/init` is forwarded. */
  godserverUrl: string;
  /** The legacy Sync (Sails) app: sockets decided "sync" and every other path go here. */
  syncUrl: string;
  /**
   * Public base URLs of the Bifrost gateway nodes (their `/socket.io/` and `/load`), one per node;
   * or `dns+http://name:port` for every address of a DNS name (a Kubernetes headless Service),
   * re-resolved before every `/load` round (proxied mode and plain http only; see proxy/bifrost-nodes.ts).
   */
  bifrostUrls: string[];
  /** How `dns+` Bifrost names are resolved to addresses (default: the DNS servers via c-ares, every A/AAAA record). */
  resolveHost?: (host: string) => Promise<string[]>;
  /** `proxied` (default): sockets come back through the shim. `direct`: clients are sent to the backend itself. */
  mode?: 'proxied' | 'direct';
  /**
   * The shim's URL as clients reach it (put into `syncserver_url` in proxied mode); default from host and port.
   * Required in proxied mode when `host` is a wildcard address (the default 0.0.0.0): `startShim` refuses to start without it.
   */
  publicUrl?: string;
  /** Local flags file; default `BIFROST_FLAGS_FILE` or `.bifrost/flags.json`. Ignored when `ldSdkKey` is set. */
  flagsFile?: string;
  /** Live LaunchDarkly SDK key; default `LD_SDK_KEY`. */
  ldSdkKey?: string;
  /** Extra LaunchDarkly SDK options in live mode, e.g. `{streamUri, baseUri, eventsUri}` of a Relay Proxy. */
  ldSdkOptions?: Record<string, unknown>;
  /** How long `startShim` waits for the flags to load before it listens anyway (all users on Sync until they load), ms (default 5000; a positive integer). */
  flagsStartTimeoutMs?: number;
  /** Access-token secret (`BIFROST_TOKEN_SECRET`); the route secret is derived from it unless given. */
  tokenSecret?: string;
  /** HMAC secret of `bf_route` tokens; default derived from the token secret (stable across restarts and replicas). */
  routeSecret?: string;
  /** Bearer token of admin write calls; default `BIFROST_ADMIN_TOKEN` or the dev token (with a loud warning). */
  adminToken?: string;
  /** When a socket decided "bifrost" finds no usable node: `sync` (default) or `error` (503). */
  fallback?: 'sync' | 'error';
  /** Rebalance closes per second (default 100). */
  rebalanceRate?: number;
  /** What a flag change does to live sockets: `close` (default: moved at the rebalance rate) or `keep`. */
  drain?: DrainPolicy;
  /** A pino logger; default pino at `LOG_LEVEL` or info. */
  log?: Logger;
  /** Lifetime of route tokens, seconds (default 86400). */
  routeTokenTtlSeconds?: number;
  /** Sails SDK query parameters restored on Sync-bound socket requests when missing. */
  sailsSdkParams?: Record<string, string>;
  /** Restore missing SDK params towards `all` backends (default) or only `sync`. */
  restoreSdkParams?: 'all' | 'sync';
  /** Backend TCP connect timeout, ms (default 3000). */
  connectTimeoutMs?: number;
  /** Godserver request timeout, ms (default 10000). */
  godserverTimeoutMs?: number;
  /** Bifrost `/load` poll interval, ms (default 1000). */
  loadPollIntervalMs?: number;
  /** Nodes above this load factor get no new sockets (default 1). */
  maxLoadFactor?: number;
  /** Flags file safety-net poll interval, ms (default 500). */
  flagsPollIntervalMs?: number;
  /** A long-polling session idle this long is forgotten, ms (default 60000). */
  pollingIdleMs?: number;
}

export interface ShimHandle {
  /** Public base URL (as given by `publicUrl`, else from the bound address). */
  url: string;
  adminUrl: string;
  /** Client and backend sockets currently open (leak checks). */
  openSockets(): { client: number; backend: number };
  /**
   * Graceful stop (SIGTERM): stops accepting connections, closes the live ones
   * at random moments spread over `windowMs` (default 10 s) so clients
   * reconnect elsewhere gradually, then closes everything.
   */
  drain(windowMs?: number): Promise<void>;
  /** Immediate stop: every socket is destroyed. Idempotent. */
  close(): Promise<void>;
}

export type ResolvedShimOptions = Required<Omit<ShimOptions, 'publicUrl' | 'ldSdkKey' | 'ldSdkOptions' | 'log' | 'resolveHost'>> & {
  resolveHost?: (host: string) => Promise<string[]>;
  publicUrl?: string;
  ldSdkKey?: string;
  ldSdkOptions?: Record<string, unknown>;
  log: Logger;
};

function checkUrl(name: string, value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new Error(`${name} must be an http(s) URL, got ${JSON.stringify(value)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${name} must be an http(s) URL, got ${JSON.stringify(value)}`);
  return value.replace(/\/+$/, '');
}

/** A Bifrost node URL, or a `dns+http://` name to discover nodes from (checked as the URL after the prefix). */
function checkNodeUrl(name: string, value: string): string {
  if (!isDiscoveryUrl(value)) return checkUrl(name, value);
  return checkDiscoveryUrl(name, value, { port: "the gateways' public port, e.g. :8080", certificates: "the gateways' certificates" });
}

function checkPositiveMs(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive whole number of milliseconds, got ${value}`);
  return value;
}

function checkPort(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`${name} must be a port number 0-65535, got ${value}`);
  return value;
}

/** Fills in every default and checks every option once. Throws with a precise message. */
export function resolveShimOptions(opts: ShimOptions): ResolvedShimOptions {
  const log = opts.log ?? pino({ name: 'bifrost-shim', level: process.env.LOG_LEVEL ?? 'info' });
  const mode = opts.mode ?? 'proxied';
  if (mode !== 'proxied' && mode !== 'direct') throw new Error(`mode must be "proxied" or "direct", got ${JSON.stringify(mode)}`);
  const fallback = opts.fallback ?? 'sync';
  if (fallback !== 'sync' && fallback !== 'error') throw new Error(`fallback must be "sync" or "error", got ${JSON.stringify(fallback)}`);
  const drain = opts.drain ?? 'close';
  if (drain !== 'close' && drain !== 'keep') throw new Error(`drain must be "close" or "keep", got ${JSON.stringify(drain)}`);
  const rebalanceRate = opts.rebalanceRate ?? 100;
  if (!(typeof rebalanceRate === 'number' && rebalanceRate > 0 && Number.isFinite(rebalanceRate))) throw new Error(`rebalanceRate must be a positive number, got ${rebalanceRate}`);
  let tokenSecret = opts.tokenSecret ?? process.env.BIFROST_TOKEN_SECRET;
  if (!tokenSecret) {
    tokenSecret = DEV_TOKEN_SECRET;
    if (!opts.routeSecret) log.warn('BIFROST_TOKEN_SECRET is not set: route tokens are signed with a key derived from the built-in development secret. Never run this in production.');
  }
  let adminToken = opts.adminToken ?? process.env.BIFROST_ADMIN_TOKEN;
  if (!adminToken) {
    adminToken = DEV_ADMIN_TOKEN;
    log.warn(`!!! BIFROST_ADMIN_TOKEN is not set: the admin API accepts the development token "${DEV_ADMIN_TOKEN}". Never run this in production. !!!`);
  }
  if (mode === 'direct') {
    const discovered = (opts.bifrostUrls ?? []).find(isDiscoveryUrl);
    if (discovered) {
      throw new Error(
        `bifrostUrls ${JSON.stringify(discovered)}: dns+ discovery finds pod addresses, which direct mode would hand to clients; list the gateways' public URLs in direct mode`,
      );
    }
  }
  const routeSecret = opts.routeSecret ?? createHmac('sha256', tokenSecret).update('bifrost-route-token/v1').digest('hex');
  return {
    port: checkPort('port', opts.port),
    adminPort: checkPort('adminPort', opts.adminPort),
    host: opts.host ?? '0.0.0.0',
    adminHost: opts.adminHost ?? '127.0.0.1',
    godserverUrl: checkUrl('godserverUrl', opts.godserverUrl),
    syncUrl: checkUrl('syncUrl', opts.syncUrl),
    bifrostUrls: (opts.bifrostUrls ?? []).map((u, i) => checkNodeUrl(`bifrostUrls[${i}]`, u)),
    resolveHost: opts.resolveHost,
    mode,
    publicUrl: opts.publicUrl ? checkUrl('publicUrl', opts.publicUrl) : undefined,
    flagsFile: opts.flagsFile ?? flagsFilePathFromEnv(),
    ldSdkKey: opts.ldSdkKey ?? (process.env.LD_SDK_KEY || undefined),
    ldSdkOptions: opts.ldSdkOptions,
    tokenSecret,
    routeSecret,
    adminToken,
    fallback,
    rebalanceRate,
    drain,
    log,
    routeTokenTtlSeconds: opts.routeTokenTtlSeconds ?? DEFAULT_ROUTE_TOKEN_TTL_SECONDS,
    sailsSdkParams: opts.sailsSdkParams ?? { ...DEFAULT_SAILS_SDK_PARAMS },
    restoreSdkParams: opts.restoreSdkParams ?? 'all',
    connectTimeoutMs: opts.connectTimeoutMs ?? 3000,
    godserverTimeoutMs: opts.godserverTimeoutMs ?? 10_000,
    loadPollIntervalMs: opts.loadPollIntervalMs ?? 1000,
    maxLoadFactor: opts.maxLoadFactor ?? 1,
    flagsPollIntervalMs: opts.flagsPollIntervalMs ?? 500,
    // 0 would mean "no timeout" to the LaunchDarkly SDK: start would wait forever.
    flagsStartTimeoutMs: checkPositiveMs('flagsStartTimeoutMs', opts.flagsStartTimeoutMs ?? 5000),
    pollingIdleMs: opts.pollingIdleMs ?? 60_000,
  };
}

function listen(server: { listen: (port: number, host: string, cb: () => void) => unknown; once: (ev: 'error', cb: (err: Error) => void) => unknown }, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

/** True for an address that means "every interface" (0.0.0.0, ::, and their spellings). */
export function isWildcardHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  if (h === '' || h === '0.0.0.0' || h === '0') return true;
  if (!net.isIPv6(h)) return false;
  try {
    return new URL(`http://[${h}]/`).hostname === '[::]';
  } catch {
    return false;
  }
}

/**
 * Proxied mode puts the shim's own URL into every `syncserver_url`. Bound to a
 * wildcard address, the shim cannot know it (the only guess, 127.0.0.1, sends
 * every remote client to its own machine), so it refuses to start without one.
 * Returns the problem in one line (option names as given in `names`), or
 * undefined when there is none. Direct mode never hands out the shim's URL.
 */
export function publicUrlProblem(
  o: { mode?: 'proxied' | 'direct'; host?: string; publicUrl?: string },
  names: { publicUrl: string; host: string } = { publicUrl: 'publicUrl', host: 'host' },
): string | undefined {
  const host = o.host ?? '0.0.0.0';
  if ((o.mode ?? 'proxied') !== 'proxied' || o.publicUrl || !isWildcardHost(host)) return undefined;
  return `${names.publicUrl} is required in proxied mode when ${names.host} is a wildcard address (${JSON.stringify(host)}): clients would be told to connect to http://127.0.0.1; set it to the URL they reach the shim at (e.g. https://sync.example.com)`;
}

function baseUrl(host: string, port: number): string {
  const h = isWildcardHost(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

/** Starts the shim. Resolves once both ports listen and the flag source has started. */
export async function startShim(options: ShimOptions): Promise<ShimHandle> {
  const o = resolveShimOptions(options);
  const problem = publicUrlProblem(o);
  if (problem) throw new Error(problem);
  const log = o.log;
  const metrics = new ShimMetrics();
  const decisions = new DecisionStats();
  const upgrades = new UpgradeStats();
  const registry = new ConnectionRegistry(metrics);

  let fileSource: FileFlagSource | undefined;
  let flags: FlagSource;
  const sourceLabel = o.ldSdkKey ? 'launchdarkly' : 'file';
  metrics.flagSourceReady.set({ source: sourceLabel }, 0);
  const onStatus: FlagSourceEvents['onStatus'] = (status, why) => {
    metrics.flagSourceReady.set({ source: sourceLabel }, status.state === 'ready' ? 1 : 0);
    if (why !== 'ready') metrics.flagSourceFailures.inc({ source: sourceLabel, reason: why });
  };
  if (o.ldSdkKey) {
    flags = new LiveFlagSource({ sdkKey: o.ldSdkKey, log, sdkOptions: o.ldSdkOptions, events: { onStatus } });
  } else {
    fileSource = new FileFlagSource({
      file: o.flagsFile,
      log,
      pollIntervalMs: o.flagsPollIntervalMs,
      events: {
        onReload: () => metrics.flagReloads.inc({ outcome: 'ok' }),
        onReloadError: () => metrics.flagReloads.inc({ outcome: 'error' }),
        onStatus,
      },
    });
    flags = fileSource;
  }
  const pool = new BifrostNodePool({ urls: o.bifrostUrls, log, pollIntervalMs: o.loadPollIntervalMs, maxLoadFactor: o.maxLoadFactor, resolveHost: o.resolveHost });
  const rebalancer = new Rebalancer({ registry, flags, metrics, log, rate: o.rebalanceRate, drain: o.drain });

  const server = http.createServer();
  const clientSockets = new Set<net.Socket>();
  let publicUrl = o.publicUrl ?? '';

  const router = new SocketRouter({
    opts: {
      syncUrl: o.syncUrl,
      routeSecret: o.routeSecret,
      fallback: o.fallback,
      sailsSdkParams: o.sailsSdkParams,
      restoreSdkParams: o.restoreSdkParams,
      connectTimeoutMs: o.connectTimeoutMs,
      pollingIdleMs: o.pollingIdleMs,
      socketPath: '/socket.io',
    },
    log,
    metrics,
    flags,
    pool,
    registry,
    decisions,
    upgrades,
  });
  const godserver = new GodserverIntercept({
    opts: {
      godserverUrl: o.godserverUrl,
      mode: o.mode,
      publicUrl: () => publicUrl,
      routeSecret: o.routeSecret,
      routeTokenTtlSeconds: o.routeTokenTtlSeconds,
      fallback: o.fallback,
      timeoutMs: o.godserverTimeoutMs,
    },
    log,
    metrics,
    flags,
    pool,
    decisions,
  });

  server.on('connection', (s: net.Socket) => {
    clientSockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => clientSockets.delete(s));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  server.on('request', (req, res) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    if (isGodserverInit(req)) godserver.handle(req, res);
    else if (router.isSocketPath(req.url)) {
      router.handlePolling(req, res).catch((err: unknown) => {
        log.error({ err }, 'socket request handling failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'serverError', message: 'socket request handling failed' } }));
      });
    }
    else router.passThrough(req, res);
  });
  server.on('upgrade', (req, socket, head) => {
    void router.handleUpgrade(req, socket, head).catch((err) => {
      log.error({ err }, 'upgrade handling failed');
      socket.destroy();
    });
  });

  let admin: Awaited<ReturnType<typeof buildAdminApp>> | undefined;
  try {
    await flags.start(o.flagsStartTimeoutMs);
    await pool.start();
    rebalancer.start();
    await listen(server, o.port, o.host);
    const addr = server.address() as net.AddressInfo;
    if (!publicUrl) publicUrl = baseUrl(o.host, addr.port);
    admin = await buildAdminApp({
      log,
      adminToken: o.adminToken,
      flags,
      flagsFile: fileSource ? o.flagsFile : undefined,
      reloadFlags: async () => {
        await fileSource?.reload();
      },
      registry,
      rebalancer,
      pool,
      metrics,
      decisions,
      upgrades,
      syncUrl: o.syncUrl,
      mode: o.mode,
      pollingSessions: () => router.pollingSessions,
    });
    await admin.listen({ port: o.adminPort, host: o.adminHost });
  } catch (err) {
    rebalancer.close();
    pool.close();
    router.close();
    await flags.close();
    server.close();
    await admin?.close();
    throw err;
  }
  const adminAddr = admin.server.address() as net.AddressInfo;
  const adminUrl = baseUrl(o.adminHost, adminAddr.port);
  log.info({ url: publicUrl, adminUrl, mode: o.mode, flags: flags.mode, flagsFile: fileSource ? o.flagsFile : undefined, sync: o.syncUrl, godserver: o.godserverUrl, bifrost: o.bifrostUrls }, 'shim listening');

  let closing: Promise<void> | undefined;
  let draining: Promise<void> | undefined;
  const adminApp = admin;
  const handle: ShimHandle = {
    url: publicUrl,
    adminUrl,
    openSockets: () => ({ client: clientSockets.size, backend: router.openBackendSockets }),
    drain: (windowMs = 10_000) => {
      draining ??= (async () => {
        log.info({ windowMs, connections: registry.size }, 'shim draining');
        server.close();
        server.closeIdleConnections();
        await rebalancer.closeAllWithin(windowMs);
        await handle.close();
      })();
      return draining;
    },
    close: () => {
      closing ??= (async () => {
        rebalancer.close();
        pool.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        router.close();
        for (const s of clientSockets) s.destroy();
        server.closeAllConnections();
        await closed;
        await adminApp.close();
        await flags.close();
      })();
      return closing;
    },
  };
  return handle;
}
