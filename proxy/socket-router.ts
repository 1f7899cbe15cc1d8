/**
 * Socket routing: `/socket.io/` WebSocket upgrades and long-polling requests go
 * to Sync or to a Bifrost node according to a fresh flag evaluation for the
 * user named by the route token (`bf_route`); everything else passes through to
 * Sync unchanged. Proxying is done by http-proxy-3.
 *
 * - WebSocket upgrades: the shim first opens the TCP connection to the chosen
 *   node itself (so a node that refuses it can be skipped and the next one
 *   tried before anything is written to the client), then hands that socket to
 *   http-proxy-3 through a one-shot agent.
 * - Long-polling: the handshake (no `sid`) is routed like an upgrade, except
 *   that a Bifrost node is chosen by rendezvous hashing of the user
 *   (`pool.byUser`) rather than by load, and the `sid` in the backend's answer
 *   pins the session to that backend; every later request of that session (and
 *   its upgrade to WebSocket) goes there too. A request with a `sid` this
 *   replica does not know (its handshake went through another replica, or
 *   this one restarted) is routed by the user of its route token the same
 *   deterministic way — so it reaches the node holding the session on every
 *   replica — and adopted (pinned here) once the backend accepts it. That
 *   lookup ranks every node not known to be unreachable, whatever its load or
 *   drain state (the session stays where it was created); only placing a new
 *   session skips draining and full nodes (see proxy/bifrost-nodes.ts).
 * - Forwarded to Sync, the query loses `bf_route` and regains the
 *   `__sails_io_sdk_*` parameters if missing: sails.io.js 1.2.1 on
 *   socket.io-client 2 lets the URL's query (our `?bf_route=`) replace its own
 *   handshake query, and Sails refuses sockets whose handshake lacks them.
 *   The same is done towards Bifrost by default (its legacy endpoint does not
 *   need them, but then both backends see the handshake the client meant to
 *   send); `restoreSdkParams: 'sync'` limits it to Sync.
 * - Every client socket and every backend socket has an error handler, and each
 *   side is destroyed when the other closes, whatever stage the handshake is in.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import type { Logger } from 'pino';
import type { Route } from './flags-file.ts';
import type { FlagSource, RouteDecision } from './flag-source.ts';
import { ROUTE_TOKEN_PARAM, RouteTokenError, verifyRouteToken, type RouteClaims } from './route-token.ts';
import type { BifrostNode, BifrostNodePool } from './bifrost-nodes.ts';
import type { ConnectionRegistry } from './connections.ts';
import type { ShimMetrics } from './metrics.ts';
import type { DecisionStats } from './decision-stats.ts';
import type { UpgradeStats } from './upgrade-stats.ts';

/** The SDK parameters Sails insists on, restored when missing (defaults: what sails.io.js 1.2.1 sends). */
export const DEFAULT_SAILS_SDK_PARAMS: Readonly<Record<string, string>> = {
  __sails_io_sdk_version: '1.2.1',
  __sails_io_sdk_platform: 'browser',
  __sails_io_sdk_language: 'javascript',
};

export interface SocketRouterOptions {
  syncUrl: string;
  routeSecret: string;
  fallback: 'sync' | 'error';
  sailsSdkParams: Record<string, string>;
  /** Which backends get missing SDK params restored: `all` (default; Bifrost ignores them) or only `sync`. */
  restoreSdkParams: 'all' | 'sync';
  /** TCP connect timeout to a backend, ms. */
  connectTimeoutMs: number;
  /** A polling session idle this long is forgotten, ms. */
  pollingIdleMs: number;
  /** Path prefix of the socket.io endpoint. */
  socketPath: string;
}

export interface SocketRouterDeps {
  opts: SocketRouterOptions;
  log: Logger;
  metrics: ShimMetrics;
  flags: FlagSource;
  pool: BifrostNodePool;
  registry: ConnectionRegistry;
  decisions: DecisionStats;
  /** Upgrade outcomes over the last minutes (for `GET /api/rollout`). */
  upgrades: UpgradeStats;
}

interface Destination {
  backend: Route;
  node?: BifrostNode;
  target: URL;
}

interface PollingSession {
  sid: string;
  dest: Destination;
  userId?: string;
  teamId?: string;
  lastSeen: number;
  /** Upgraded to WebSocket: the WebSocket connection is what counts then. */
  upgraded: boolean;
  connId: string;
  /** Requests of this session being proxied now (a long-poll GET waits at the backend). */
  inflight: Set<http.ServerResponse>;
}

/**
 * One agent per router that hands http.request the socket the router
 * connected beforehand (so it could try the next node when one refused).
 * http-proxy-3 creates its outgoing request synchronously inside
 * `proxy.ws()`, so `handOver` sets the socket, calls it, and clears the slot:
 * no agent is built per upgrade.
 */
function handOverAgent(Base: typeof http.Agent) {
  return class extends Base {
    private next: Duplex | undefined;
    constructor() {
      super({ keepAlive: false });
    }
    override createConnection(): Duplex {
      const s = this.next;
      this.next = undefined;
      if (!s) throw new Error('no pre-connected backend socket to hand over');
      return s;
    }
    /** Runs `start` (which must create the request synchronously) with `socket` as its connection. */
    handOver(socket: Duplex, start: () => void): void {
      this.next = socket;
      try {
        start();
      } finally {
        this.next = undefined;
      }
    }
  };
}
const HandOverAgent = handOverAgent(http.Agent);
const HandOverHttpsAgent = handOverAgent(https.Agent);

/**
 * The URL (path + query) a socket request is forwarded with: `bf_route` removed,
 * and the Sails SDK parameters added where missing — towards Sync always,
 * towards Bifrost too when `restoreTo` is `all`. Everything else is kept as is.
 */
export function rewriteSocketUrl(url: string, backend: Route, sdkParams: Record<string, string>, restoreTo: 'all' | 'sync'): string {
  return rewriteParsedSocketUrl(new URL(url, 'http://shim.invalid'), backend, sdkParams, restoreTo);
}

/** `rewriteSocketUrl` on an already parsed URL, which it changes (an upgrade parses its URL once). */
function rewriteParsedSocketUrl(u: URL, backend: Route, sdkParams: Record<string, string>, restoreTo: 'all' | 'sync'): string {
  u.searchParams.delete(ROUTE_TOKEN_PARAM);
  if (backend === 'sync' || restoreTo === 'all') {
    for (const [k, v] of Object.entries(sdkParams)) {
      if (!u.searchParams.has(k)) u.searchParams.set(k, v);
    }
  }
  const search = u.searchParams.toString();
  return u.pathname + (search ? `?${search}` : '');
}

/** Opens a TCP (or TLS) connection to a target, failing after `timeoutMs`. */
export function connectTo(target: URL, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const secure = target.protocol === 'https:' || target.protocol === 'wss:';
    const port = Number(target.port || (secure ? 443 : 80));
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
    const sock: net.Socket = secure ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host }) : net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy(new Error(`connect timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.once('error', onError);
    sock.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      sock.removeListener('error', onError);
      resolve(sock);
    });
  });
}

/**
 * Until the backend answers the upgrade, nobody reads the client socket, so a
 * client that gives up mid-handshake (FIN) would go unnoticed and both sockets
 * would stay open forever. The guard reads the socket meanwhile: bytes are kept
 * (handed back with `release()`), and an end of stream destroys the socket.
 */
interface PreUpgradeGuard {
  /** Stops watching; returns the bytes read meanwhile (to be unshifted back). */
  release(): Buffer;
}
function guardPreUpgrade(socket: Duplex): PreUpgradeGuard {
  const early: Buffer[] = [];
  const onData = (d: Buffer): void => {
    early.push(d);
  };
  const onEnd = (): void => {
    socket.destroy();
  };
  socket.on('data', onData);
  socket.once('end', onEnd);
  let released = false;
  return {
    release() {
      if (released) return Buffer.alloc(0);
      released = true;
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.pause();
      return Buffer.concat(early);
    },
  };
}

function writeHttpError(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: { code: status === 503 ? 'unavailable' : 'badGateway', message } });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  const t = setTimeout(() => socket.destroy(), 1000);
  t.unref();
}

export class SocketRouter {
  readonly proxy: ProxyServer;
  private readonly syncTarget: URL;
  private readonly sessions = new Map<string, PollingSession>();
  /** Sids whose session was moved by a rebalance: answered "Session ID unknown" so the client reconnects. */
  private readonly evicted = new Map<string, number>();
  private readonly handshakes = new WeakMap<http.IncomingMessage, { dest: Destination; claims?: RouteClaims }>();
  /** Requests of sessions this replica did not know, pinned here if their backend accepts them (see `adopt`). */
  private readonly adopting = new WeakMap<http.IncomingMessage, { sid: string; dest: Destination; claims?: RouteClaims }>();
  private readonly backendSockets = new Set<net.Socket>();
  /** Per upgrade request: what to do with http-proxy-3's outgoing request once it exists. */
  private readonly pendingUpgrades = new WeakMap<http.IncomingMessage, (proxyReq: http.ClientRequest) => void>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly httpAgent = new HandOverAgent();
  private readonly httpsAgent = new HandOverHttpsAgent();

  constructor(private readonly deps: SocketRouterDeps) {
    this.syncTarget = new URL(deps.opts.syncUrl);
    this.proxy = createProxyServer({ ws: true, xfwd: false, changeOrigin: false, proxyTimeout: 0 });
    this.proxy.on('error', (err, _req, res) => {
      deps.metrics.proxyErrors.inc({ backend: 'unknown', kind: 'proxy' });
      deps.log.warn({ err: err.message }, 'proxy error');
      if (res && 'writeHead' in res) {
        const r = res as http.ServerResponse;
        if (!r.headersSent) r.writeHead(502, { 'content-type': 'application/json' });
        r.end(JSON.stringify({ error: { code: 'badGateway', message: err.message } }));
      } else if (res) {
        (res as Duplex).destroy();
      }
    });
    this.proxy.on('proxyRes', (proxyRes, req) => {
      this.captureSid(proxyRes, req);
      this.adopt(proxyRes, req);
    });
    this.proxy.on('proxyReqWs', (proxyReq, req) => {
      const onProxyReq = this.pendingUpgrades.get(req);
      if (!onProxyReq) return;
      this.pendingUpgrades.delete(req);
      onProxyReq(proxyReq);
    });
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.floor(deps.opts.pollingIdleMs / 4)));
    this.sweeper.unref();
  }

  /** Backend sockets the router holds open (for leak checks). */
  get openBackendSockets(): number {
    return this.backendSockets.size;
  }

  get pollingSessions(): number {
    return this.sessions.size;
  }

  isSocketPath(url: string | undefined): boolean {
    const path = (url ?? '/').split('?')[0]!;
    return path === this.deps.opts.socketPath || path.startsWith(this.deps.opts.socketPath + '/') || path === this.deps.opts.socketPath.replace(/\/$/, '');
  }

  private lastNoNodeWarning = 0;
  /** Says (at most once a second) why no Bifrost node could take a socket. */
  private warnNoNode(): void {
    const now = Date.now();
    if (now - this.lastNoNodeWarning < 1000) return;
    this.lastNoNodeWarning = now;
    this.deps.log.warn(
      { fallback: this.deps.opts.fallback, nodes: this.deps.pool.nodes.map((n) => ({ id: n.id, reachable: n.reachable, loadFactor: n.loadFactor, draining: n.draining, penalised: n.failedUntil > now })) },
      'no Bifrost node can take a socket',
    );
  }

  // ---------------------------------------------------------------- decisions

  /** Decides the route for a socket request from its route token. */
  async decide(query: URLSearchParams): Promise<{ decision: RouteDecision; claims?: RouteClaims }> {
    const { metrics, decisions, opts } = this.deps;
    let claims: RouteClaims;
    try {
      const verified = verifyRouteToken(opts.routeSecret, query.get(ROUTE_TOKEN_PARAM));
      // An expired but genuine token (the client ran longer than routeTokenTtlSeconds without calling
      // init again) is routed all the same, so the client is neither stranded on Sync nor invisible
      // to the rebalancer; counted.
      if (verified.expired) metrics.routeTokenExpired.inc();
      claims = { userId: verified.userId, teamId: verified.teamId, exp: verified.exp };
    } catch (err) {
      const reason = err instanceof RouteTokenError ? err.reason : 'malformed';
      metrics.routeTokenRejections.inc({ reason });
      const decision: RouteDecision = { route: 'sync', reason: 'error', detail: `route_token_${reason}` };
      metrics.decisions.inc({ route: 'sync', reason: `route_token_${reason}`, source: 'socket' });
      decisions.record('sync', `route_token_${reason}`);
      return { decision };
    }
    return await this.decideFor(claims);
  }

  /** A fresh flag evaluation for the user (and team) of a route token, counted. */
  private async decideFor(claims: RouteClaims): Promise<{ decision: RouteDecision; claims: RouteClaims }> {
    const { metrics, decisions, flags } = this.deps;
    const decision = await flags.decide(claims.userId, claims.teamId);
    metrics.decisions.inc({ route: decision.route, reason: decision.reason, source: 'socket' });
    decisions.record(decision.route, decision.reason);
    if (decision.reason !== 'flag') metrics.evaluationErrors.inc({ reason: decision.detail ?? decision.reason });
    return { decision, claims };
  }

  /** The URL to forward to a backend (see `rewriteSocketUrl`). */
  rewriteUrl(url: string, backend: Route): string {
    return rewriteSocketUrl(url, backend, this.deps.opts.sailsSdkParams, this.deps.opts.restoreSdkParams);
  }

  private syncDest(): Destination {
    return { backend: 'sync', target: this.syncTarget };
  }

  // ---------------------------------------------------------------- plain HTTP

  /** Passes a request through to Sync unchanged. */
  passThrough(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.proxy.web(req, res, { target: this.syncTarget }, (err) => this.webError(err, res, 'sync'));
  }

  private webError(err: Error, res: http.ServerResponse | Duplex, backend: string): void {
    this.deps.metrics.proxyErrors.inc({ backend, kind: (err as NodeJS.ErrnoException).code ?? 'error' });
    this.deps.log.warn({ err: err.message, backend }, 'HTTP proxy error');
    if ('writeHead' in res) {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'badGateway', message: `${backend} unreachable: ${err.message}` } }));
      } else {
        res.destroy();
      }
    } else {
      res.destroy();
    }
  }

  /** Long-polling (and any other HTTP) request under the socket.io path. */
  async handlePolling(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://shim.invalid');
    const sid = url.searchParams.get('sid');
    if (sid) {
      const s = this.sessions.get(sid);
      if (s) {
        s.lastSeen = Date.now();
        s.inflight.add(res);
        res.once('close', () => s.inflight.delete(res));
        req.url = this.rewriteUrl(req.url ?? '/', s.dest.backend);
        this.proxy.web(req, res, { target: s.dest.target }, (err) => this.webError(err, res, s.dest.backend));
        return;
      }
      if (this.evicted.has(sid)) {
        // What engine.io answers for a session it does not know: the client reconnects.
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 1, message: 'Session ID unknown' }));
        return;
      }
    }
    let closed = false;
    res.on('close', () => {
      closed = true;
    });
    const { decision, claims } = await this.decide(url.searchParams);
    if (closed) return;
    let candidates: Destination[];
    if (decision.route === 'bifrost') {
      candidates = this.pollingNodes(claims, !sid).map((node) => ({ backend: 'bifrost' as const, node, target: node.target }));
      if (candidates.length === 0) {
        this.deps.metrics.fallbacks.inc({ reason: 'no_eligible_node', action: this.deps.opts.fallback });
        this.warnNoNode();
        if (this.deps.opts.fallback === 'error') {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'unavailable', message: 'no Bifrost node available' } }));
          return;
        }
        candidates = [this.syncDest()];
      } else if (this.deps.opts.fallback === 'sync') {
        candidates.push(this.syncDest());
      }
    } else {
      candidates = [this.syncDest()];
    }
    const originalUrl = req.url ?? '/';
    const retryable = req.method === 'GET' && !sid;
    const attempt = (i: number): void => {
      const dest = candidates[i]!;
      req.url = this.rewriteUrl(originalUrl, dest.backend);
      if (!sid) this.handshakes.set(req, { dest, claims });
      else this.adopting.set(req, { sid, dest, claims });
      this.proxy.web(req, res, { target: dest.target }, (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        const refused = code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT';
        if (dest.node && refused) this.deps.pool.markFailed(dest.node);
        if (retryable && refused && i + 1 < candidates.length && !res.headersSent && !closed) {
          if (candidates[i + 1]!.backend === 'sync' && dest.backend === 'bifrost') {
            this.deps.metrics.fallbacks.inc({ reason: 'all_refused', action: 'sync' });
          }
          attempt(i + 1);
          return;
        }
        this.webError(err, res, dest.backend);
      });
    };
    attempt(0);
  }

  /**
   * Bifrost nodes for a long-polling request, best first: by rendezvous hashing
   * of the user, so every shim replica sends a user's polling session — its
   * handshake (`placing`: draining and full nodes skipped) and any later request
   * with a sid the replica does not know (every node not known unreachable) — to
   * the same node. Without a user (cannot happen for a "bifrost"
   * decision, which needs a route token) it falls back to the load-based choice.
   */
  private pollingNodes(claims: RouteClaims | undefined, placing: boolean): BifrostNode[] {
    if (!claims) return this.deps.pool.candidates();
    return this.deps.pool.byUser(claims.userId, placing);
  }

  /** A request of a session this replica did not know was accepted by its backend: pin the session here too. */
  private adopt(proxyRes: http.IncomingMessage, req: http.IncomingMessage): void {
    const a = this.adopting.get(req);
    if (!a) return;
    this.adopting.delete(req);
    if (proxyRes.statusCode !== 200 || this.sessions.has(a.sid)) return;
    this.deps.metrics.pollingAdopted.inc({ backend: a.dest.backend });
    this.pin(a.sid, a.dest, a.claims);
  }

  /** Reads the sid out of a polling handshake answer and pins the session. */
  private captureSid(proxyRes: http.IncomingMessage, req: http.IncomingMessage): void {
    const hs = this.handshakes.get(req);
    if (!hs) return;
    this.handshakes.delete(req);
    if (proxyRes.statusCode !== 200) return;
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('latin1');
      const m = /"sid":"([^"]+)"/.exec(seen);
      if (m || seen.length > 4096) {
        proxyRes.removeListener('data', onData);
        if (m) this.pin(m[1]!, hs.dest, hs.claims);
      }
    };
    proxyRes.on('data', onData);
  }

  private pin(sid: string, dest: Destination, claims?: RouteClaims): void {
    if (this.sessions.has(sid)) return;
    const connId = `poll-${sid}`;
    const session: PollingSession = { sid, dest, userId: claims?.userId, teamId: claims?.teamId, lastSeen: Date.now(), upgraded: false, connId, inflight: new Set() };
    this.sessions.set(sid, session);
    this.deps.registry.add({
      id: connId,
      transport: 'polling',
      backend: dest.backend,
      node: dest.node?.id,
      userId: claims?.userId,
      teamId: claims?.teamId,
      sid,
      openedAt: Date.now(),
      close: () => this.evict(sid),
    });
  }

  /** Forgets a polling session; its next request is told the session is unknown, so the client reconnects. */
  private evict(sid: string): void {
    const s = this.sessions.get(sid);
    if (!s) return;
    this.sessions.delete(sid);
    this.deps.registry.remove(s.connId);
    this.evicted.set(sid, Date.now());
    // A long-poll waiting at the old backend would hold the client there until the next ping:
    // answer it now as engine.io would for an unknown session, so the client reconnects at once.
    for (const res of s.inflight) {
      if (!res.headersSent) {
        res.writeHead(400, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify({ code: 1, message: 'Session ID unknown' }));
      } else {
        res.destroy();
      }
    }
    s.inflight.clear();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [sid, s] of this.sessions) {
      if (!s.upgraded && now - s.lastSeen > this.deps.opts.pollingIdleMs) {
        this.sessions.delete(sid);
        this.deps.registry.remove(s.connId);
      }
    }
    for (const [sid, at] of this.evicted) {
      if (now - at > this.deps.opts.pollingIdleMs * 2) this.evicted.delete(sid);
    }
  }

  // ---------------------------------------------------------------- upgrades

  /** One upgrade's outcome: the Prometheus counter and the recent window. */
  private countUpgrade(backend: Route, outcome: 'ok' | 'rejected' | 'refused' | 'error' | 'aborted' | 'unavailable'): void {
    this.deps.metrics.upgrades.inc({ backend, outcome });
    this.deps.upgrades.record(backend, outcome);
  }

  /** A WebSocket upgrade: to Sync unchanged off the socket.io path, else routed. */
  async handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { metrics, log, pool, opts } = this.deps;
    let clientClosed = false;
    socket.on('error', (err) => log.debug({ err: err.message }, 'client socket error'));
    socket.once('close', () => {
      clientClosed = true;
    });
    const guard = guardPreUpgrade(socket);

    if (!this.isSocketPath(req.url)) {
      await this.pipeUpgrade(req, socket, head, guard, this.syncDest(), undefined, req.url ?? '/');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://shim.invalid');
    const sid = url.searchParams.get('sid');
    const pinned = sid ? this.sessions.get(sid) : undefined;
    if (sid && !pinned && this.evicted.has(sid)) {
      writeHttpError(socket, 400, 'Session ID unknown');
      return;
    }
    let claims: RouteClaims | undefined;
    let candidates: Destination[];
    if (pinned) {
      candidates = [pinned.dest];
      claims = pinned.userId ? { userId: pinned.userId, teamId: pinned.teamId ?? '', exp: 0 } : undefined;
    } else {
      const d = await this.decide(url.searchParams);
      claims = d.claims;
      if (d.decision.route === 'bifrost') {
        // With a sid this replica does not know, the session lives where the user's polling sessions go
        // (see pollingNodes); a plain WebSocket (no sid) is placed by load.
        const nodes = sid ? this.pollingNodes(claims, false) : pool.candidates();
        candidates = nodes.map((node) => ({ backend: 'bifrost' as const, node, target: node.target }));
        if (candidates.length === 0) {
          metrics.fallbacks.inc({ reason: 'no_eligible_node', action: opts.fallback });
          this.warnNoNode();
          if (opts.fallback === 'error') {
            this.countUpgrade('bifrost', 'unavailable');
            writeHttpError(socket, 503, 'no Bifrost node available');
            return;
          }
          candidates = [this.syncDest()];
        }
      } else {
        candidates = [this.syncDest()];
      }
    }
    if (clientClosed) {
      this.countUpgrade(candidates[0]!.backend, 'aborted');
      return;
    }

    // Connect to the first candidate that accepts; Bifrost nodes that refuse are skipped.
    let conn: net.Socket | undefined;
    let dest: Destination | undefined;
    for (const c of candidates) {
      try {
        conn = await connectTo(c.target, opts.connectTimeoutMs);
        dest = c;
        break;
      } catch (err) {
        this.countUpgrade(c.backend, 'refused');
        log.warn({ backend: c.backend, node: c.node?.id, err: (err as Error).message }, 'backend refused the connection');
        if (c.node) pool.markFailed(c.node);
      }
    }
    if (!conn && candidates[0]!.backend === 'bifrost' && !pinned) {
      metrics.fallbacks.inc({ reason: 'all_refused', action: opts.fallback });
      if (opts.fallback === 'sync') {
        const syncDest = this.syncDest();
        try {
          conn = await connectTo(syncDest.target, opts.connectTimeoutMs);
          dest = syncDest;
        } catch (err) {
          this.countUpgrade('sync', 'refused');
          log.warn({ err: (err as Error).message }, 'Sync refused the connection');
        }
      }
    }
    if (!conn || !dest) {
      this.countUpgrade(candidates[0]!.backend, 'unavailable');
      writeHttpError(socket, candidates[0]!.backend === 'bifrost' && opts.fallback === 'error' ? 503 : 502, 'no backend accepted the connection');
      return;
    }
    if (clientClosed || socket.destroyed) {
      conn.destroy();
      this.countUpgrade(dest.backend, 'aborted');
      return;
    }
    // `pinned.upgraded` is set only once the backend accepts (its 101, in pipeUpgrade): a refused or
    // aborted upgrade leaves the session a polling one, forgotten by the sweep when idle.
    const forwardUrl = rewriteParsedSocketUrl(url, dest.backend, opts.sailsSdkParams, opts.restoreSdkParams);
    await this.pipeUpgrade(req, socket, head, guard, dest, claims, forwardUrl, conn, sid ?? undefined);
  }

  /** Hands the upgrade to http-proxy-3 over a (pre)connected backend socket, and tracks the connection. */
  private async pipeUpgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    guard: PreUpgradeGuard,
    dest: Destination,
    claims: RouteClaims | undefined,
    url: string,
    preconnected?: net.Socket,
    sid?: string,
  ): Promise<void> {
    const { metrics, log, registry, opts } = this.deps;
    let conn = preconnected;
    if (!conn) {
      try {
        conn = await connectTo(dest.target, opts.connectTimeoutMs);
      } catch (err) {
        this.countUpgrade(dest.backend, 'refused');
        writeHttpError(socket, 502, `${dest.backend} unreachable: ${(err as Error).message}`);
        return;
      }
      if (socket.destroyed) {
        conn.destroy();
        this.countUpgrade(dest.backend, 'aborted');
        return;
      }
    }
    const backendSocket = conn;
    this.backendSockets.add(backendSocket);
    const id = randomUUID();
    let outcome: 'pending' | 'ok' | 'rejected' | 'error' | 'aborted' = 'pending';
    const settle = (o: Exclude<typeof outcome, 'pending'>): void => {
      if (outcome !== 'pending') return;
      outcome = o;
      this.countUpgrade(dest.backend, o);
    };
    backendSocket.on('error', (err) => log.debug({ conn: id, err: err.message, backend: dest.backend }, 'backend socket error'));
    backendSocket.once('close', () => {
      this.backendSockets.delete(backendSocket);
      // The backend went away (or refused): let the client see it and reconnect.
      if (!socket.destroyed) {
        if (socket instanceof net.Socket) socket.destroySoon();
        else socket.end();
      }
      const t = setTimeout(() => socket.destroy(), 2000);
      t.unref();
    });
    socket.once('close', () => {
      if (outcome === 'pending') settle('aborted');
      backendSocket.destroy();
      registry.remove(id);
      if (sid) {
        const s = this.sessions.get(sid);
        if (s && s.connId === id) {
          this.sessions.delete(sid);
        }
      }
    });
    req.url = url;
    this.pendingUpgrades.set(req, (proxyReq: http.ClientRequest): void => {
      proxyReq.on('error', () => undefined);
      proxyReq.once('upgrade', () => {
        settle('ok');
        // Runs before http-proxy-3's own upgrade handler, which then pipes the sockets.
        const early = guard.release();
        if (early.length) socket.unshift(early);
        if (socket.destroyed) return;
        if (sid) {
          const s = this.sessions.get(sid);
          if (s) {
            // The polling session became this WebSocket: it is counted (and rebalanced) as one,
            // and the sweep leaves it alone (it ends when the WebSocket closes).
            registry.remove(s.connId);
            s.connId = id;
            s.upgraded = true;
          }
        }
        log.debug({ conn: id, user: claims?.userId, backend: dest.backend, node: dest.node?.id, sid }, 'WebSocket proxied');
        registry.add({
          id,
          transport: 'websocket',
          backend: dest.backend,
          node: dest.node?.id,
          userId: claims?.userId,
          teamId: claims?.teamId,
          sid,
          openedAt: Date.now(),
          close: () => {
            backendSocket.end();
            socket.end();
            const t = setTimeout(() => {
              backendSocket.destroy();
              socket.destroy();
            }, 2000);
            t.unref();
          },
        });
      });
      proxyReq.once('response', (res) => {
        settle('rejected');
        if (dest.node && res.statusCode && res.statusCode >= 500) this.deps.pool.markFailed(dest.node);
      });
    });
    const agent = dest.target.protocol === 'https:' ? this.httpsAgent : this.httpAgent;
    agent.handOver(backendSocket, () =>
      this.proxy.ws(req, socket, head, { target: dest.target, agent }, (err) => {
        this.pendingUpgrades.delete(req);
        settle('error');
        metrics.proxyErrors.inc({ backend: dest.backend, kind: (err as NodeJS.ErrnoException).code ?? 'error' });
        log.debug({ conn: id, err: err.message, backend: dest.backend }, 'WebSocket proxy error');
        backendSocket.destroy();
      }),
    );
    // proxy.ws may have refused synchronously (not a valid WebSocket upgrade) without a backend request.
    if (this.pendingUpgrades.has(req) && socket.destroyed) {
      this.pendingUpgrades.delete(req);
      backendSocket.destroy();
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const s of this.backendSockets) s.destroy();
    this.backendSockets.clear();
    this.sessions.clear();
    this.evicted.clear();
  }
}
