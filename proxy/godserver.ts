/**
 * The Godserver intercept: `GET /godserver/init` is forwarded to the Godserver
 * with the client's headers (including `x-access-token`); on a 200 whose body
 * names `user.id` (and `user.teamId`), the shim evaluates the migration flag for
 * that user and rewrites only `syncserver_url`:
 * - proxied mode: the shim's public URL with `?bf_route=<signed route token>`,
 *   so the socket comes back through the shim (and can be moved later);
 * - direct mode: the chosen backend's public URL (Sync's own URL as the
 *   Godserver gave it, or a Bifrost node chosen by load).
 * The answer carries `x-bifrost-route: sync|bifrost`. Anything else (non-200,
 * a body without a user) passes through untouched.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import type { FlagSource } from './flag-source.ts';
import type { Route } from './flags-file.ts';
import { ROUTE_TOKEN_PARAM, signRouteToken } from './route-token.ts';
import type { BifrostNodePool } from './bifrost-nodes.ts';
import type { ShimMetrics } from './metrics.ts';
import type { DecisionStats } from './decision-stats.ts';

export const GODSERVER_INIT_PATH = '/godserver/init';
export const ROUTE_HEADER = 'x-bifrost-route';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Bodies larger than this are passed through without a rewrite. */
const MAX_REWRITE_BYTES = 1024 * 1024;

export interface GodserverOptions {
  godserverUrl: string;
  mode: 'proxied' | 'direct';
  /** The shim's public base URL (what clients reach it at). */
  publicUrl: () => string;
  routeSecret: string;
  routeTokenTtlSeconds: number;
  fallback: 'sync' | 'error';
  timeoutMs: number;
}

export interface GodserverDeps {
  opts: GodserverOptions;
  log: Logger;
  metrics: ShimMetrics;
  flags: FlagSource;
  pool: BifrostNodePool;
  decisions: DecisionStats;
}

export function isGodserverInit(req: http.IncomingMessage): boolean {
  return req.method === 'GET' && (req.url ?? '').split('?')[0] === GODSERVER_INIT_PATH;
}

function forwardHeaders(req: http.IncomingMessage, target: URL): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    out[k] = v;
  }
  out.host = target.host;
  // The body may be rewritten: ask for it uncompressed.
  delete out['accept-encoding'];
  return out;
}

/** The URL the client gets in proxied mode: the shim's public URL plus the route token. */
export function proxiedSyncserverUrl(publicUrl: string, token: string): string {
  const u = new URL(publicUrl);
  u.searchParams.set(ROUTE_TOKEN_PARAM, token);
  return u.toString();
}

/**
 * A user or team id as the flag and the route token need it: a non-empty string
 * as is, a finite number (Godservers backed by SQL ids send `"id": 42`) as its
 * decimal string, anything else undefined.
 */
export function idOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value || undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

export class GodserverIntercept {
  private readonly target: URL;

  constructor(private readonly deps: GodserverDeps) {
    this.target = new URL(deps.opts.godserverUrl);
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const { log, metrics } = this.deps;
    const target = this.target;
    const path = (target.pathname.replace(/\/+$/, '') || '') + (req.url ?? GODSERVER_INIT_PATH);
    const client = target.protocol === 'https:' ? https : http;
    let failed = false;
    let answered = false;
    let counted = false;
    /** Counts the request in godserverRequests; only the first call counts (one request, one sample). */
    const count = (status: string, rewritten: 'true' | 'false'): void => {
      if (counted) return;
      counted = true;
      metrics.godserverRequests.inc({ status, rewritten });
    };
    /**
     * The one way an init request ends badly, whatever the stage (connect, headers,
     * body, rewrite): counted once (not again when already counted by its status,
     * e.g. a relayed non-200 whose body then stalls), logged, a 502 while nothing
     * has been sent, else the client's connection is cut (a half-sent answer must
     * not look whole).
     */
    const fail = (err: Error): void => {
      if (failed) return;
      failed = true;
      const clientLeft = res.destroyed && !res.writableFinished;
      count(clientLeft ? 'aborted' : 'error', 'false');
      if (clientLeft) {
        log.debug({ err: err.message }, 'client left during the Godserver init request');
        return;
      }
      log.warn({ err: err.message }, 'Godserver request failed');
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json', connection: 'close' });
        const what = answered ? 'Godserver answer broke off' : 'Godserver unreachable';
        res.end(JSON.stringify({ error: { code: 'badGateway', message: `${what}: ${err.message}` } }));
      } else {
        res.destroy();
      }
    };
    const upstream = client.request(
      { protocol: target.protocol, hostname: target.hostname.replace(/^\[(.*)\]$/, '$1'), port: target.port, method: 'GET', path, headers: forwardHeaders(req, target), timeout: this.deps.opts.timeoutMs },
      (up) => {
        answered = true;
        this.onResponse(req, res, up, count).catch((err: unknown) => {
          upstream.destroy();
          fail(err instanceof Error ? err : new Error(String(err)));
        });
      },
    );
    upstream.on('timeout', () => upstream.destroy(new Error(`Godserver timed out after ${this.deps.opts.timeoutMs} ms`)));
    upstream.on('error', (err) => fail(err));
    req.on('error', () => upstream.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.end();
  }

  private passThrough(res: http.ServerResponse, up: http.IncomingMessage, body?: Buffer): void {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
    if (body) res.end(body);
    else up.pipe(res);
  }

  /**
   * Relays (non-200) or rewrites (200) the Godserver's answer. Rejects when the
   * answer breaks off (reset, timeout after the headers, the client leaving):
   * `handle` turns that into a 502 or a cut connection, never an unhandled rejection.
   */
  private async onResponse(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    up: http.IncomingMessage,
    count: (status: string, rewritten: 'true' | 'false') => void,
  ): Promise<void> {
    const { metrics, log } = this.deps;
    if (up.statusCode !== 200) {
      // Piped: an error on the way cuts the client's connection (its headers are already sent).
      up.on('error', () => res.destroy());
      count(String(up.statusCode), 'false');
      this.passThrough(res, up);
      return;
    }
    // The loop below rejects on a stream error; this keeps a late one from being "unhandled".
    up.on('error', () => undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    for await (const chunk of up as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_REWRITE_BYTES) tooBig = true;
      chunks.push(chunk);
    }
    const raw = Buffer.concat(chunks);
    let body: { user?: { id?: unknown; teamId?: unknown }; syncserver_url?: unknown } | undefined;
    if (!tooBig && !up.headers['content-encoding']) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = undefined;
      }
    }
    const userId = idOf(body?.user?.id);
    if (!body || typeof body !== 'object' || !userId) {
      count('200', 'false');
      log.warn('Godserver 200 without a recognisable {user: {id}} body: passed through untouched');
      this.passThrough(res, up, raw);
      return;
    }
    const teamId = idOf(body.user?.teamId) ?? '';
    const decision = await this.deps.flags.decide(userId, teamId);
    metrics.decisions.inc({ route: decision.route, reason: decision.reason, source: 'godserver' });
    this.deps.decisions.record(decision.route, decision.reason);
    if (decision.reason !== 'flag') metrics.evaluationErrors.inc({ reason: decision.detail ?? decision.reason });

    let route: Route = decision.route;
    let url: string;
    if (this.deps.opts.mode === 'proxied') {
      const token = signRouteToken(this.deps.opts.routeSecret, { userId, teamId }, this.deps.opts.routeTokenTtlSeconds);
      url = proxiedSyncserverUrl(this.deps.opts.publicUrl(), token);
    } else if (route === 'bifrost') {
      const node = this.deps.pool.candidates()[0];
      if (node) {
        url = node.url;
      } else {
        metrics.fallbacks.inc({ reason: 'no_eligible_node', action: this.deps.opts.fallback });
        if (this.deps.opts.fallback === 'error') {
          count('200', 'false');
          res.writeHead(503, { 'content-type': 'application/json', [ROUTE_HEADER]: 'bifrost' });
          res.end(JSON.stringify({ error: { code: 'unavailable', message: 'no Bifrost node available' } }));
          return;
        }
        route = 'sync';
        url = String(body.syncserver_url ?? '');
      }
    } else {
      url = String(body.syncserver_url ?? '');
    }
    const rewritten = { ...body, syncserver_url: url };
    const out = Buffer.from(JSON.stringify(rewritten), 'utf8');
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(up.headers)) {
      if (v === undefined || HOP_BY_HOP.has(k) || k === 'content-length' || k === 'etag') continue;
      headers[k] = v;
    }
    headers['content-length'] = out.length;
    headers[ROUTE_HEADER] = route;
    count('200', 'true');
    log.debug({ userId, teamId, route, reason: decision.reason, mode: this.deps.opts.mode, method: req.method }, 'godserver init routed');
    res.writeHead(200, up.statusMessage, headers);
    res.end(out);
  }
}
