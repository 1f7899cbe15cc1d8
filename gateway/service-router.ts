/**
 * Client requests to internal services: the routing table (kept in the
 * broker's store, cached here and refreshed when any node changes it), path
 * checks, and the upstream HTTP call.
 */
import type { Broker, ServiceDefinition } from './broker.ts';
import { GatewayError } from './errors.ts';
import type { AccessClaims } from './token.ts';

export interface ProxyRequest {
  service?: string;
  method: string;
  path: string;
  query?: Record<string, unknown>;
  body?: unknown;
  /** Client-supplied headers (x-bifrost-* and hop-by-hop ones are dropped). */
  headers?: Record<string, string>;
  /** The caller's access token, forwarded as x-access-token. */
  token: string;
  claims: AccessClaims;
  requestId?: string;
}

export interface ProxyResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  /** Topics from x-bifrost-subscribe / x-bifrost-unsubscribe. */
  subscribe: string[];
  unsubscribe: string[];
  service: string;
}

/** Response headers relayed to clients. */
const SAFE_RESPONSE_HEADERS = new Set(['content-type', 'etag', 'last-modified', 'cache-control', 'location', 'x-request-id', 'retry-after', 'x-exit']);
/** Request headers never forwarded from a client. */
const DROPPED_REQUEST_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'upgrade', 'keep-alive', 'proxy-authorization', 'te', 'trailer', 'cookie', 'authorization', 'x-access-token']);

const CACHE_MS = 1000;

/**
 * Normalises a client path and refuses escapes: `..` or `.` segments, encoded
 * (`%2e%2e`, `%2f`, `%5c`, double encoding) or not, backslashes, NUL and
 * control characters. Returns the path (query string removed) and the query.
 */
export function checkPath(raw: string): { path: string; search: string } {
  if (typeof raw !== 'string' || !raw.startsWith('/') || raw.startsWith('//')) throw new GatewayError('invalidPathError', 'path must start with a single /');
  const q = raw.indexOf('?');
  const pathPart = q < 0 ? raw : raw.slice(0, q);
  const search = q < 0 ? '' : raw.slice(q);
  let decoded = pathPart;
  for (let i = 0; i < 3; i++) {
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      throw new GatewayError('invalidPathError', 'path has a malformed percent-encoding');
    }
    if (next === decoded) break;
    decoded = next;
  }
  if (/[\\\u0000-\u001f\u007f]/.test(decoded)) throw new GatewayError('invalidPathError', 'path contains a backslash or a control character');
  if (decoded.split('/').some((seg) => seg === '..' || seg === '.')) throw new GatewayError('invalidPathError', 'path may not contain "." or ".." segments');
  if (decoded !== pathPart && /%2f|%5c/i.test(pathPart)) throw new GatewayError('invalidPathError', 'path may not contain encoded slashes');
  return { path: pathPart, search };
}

export function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  const p = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return path === p || path.startsWith(p + '/');
}

function splitTopics(v: string | null): string[] {
  if (!v) return [];
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export interface ServiceRouterOptions {
  timeoutMs: number;
  maxResponseBytes: number;
  nodeId: string;
  /** How long the service table is reused before it is read again (a change published on the control channel drops it at once). Default 1 s. */
  cacheMs?: number;
}

export class ServiceRouter {
  private cache: { at: number; services: ServiceDefinition[] } | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly opts: ServiceRouterOptions,
  ) {
    broker.onControl((m) => {
      if (m.type === 'services-changed') this.cache = undefined;
    });
  }

  async services(): Promise<ServiceDefinition[]> {
    if (this.cache && Date.now() - this.cache.at < (this.opts.cacheMs ?? CACHE_MS)) return this.cache.services;
    const services = await this.broker.listServices();
    this.cache = { at: Date.now(), services };
    return services;
  }

  invalidate(): void {
    this.cache = undefined;
  }

  /** The service owning a path: the longest matching prefix (legacy requests name no service). */
  async serviceForPath(path: string): Promise<ServiceDefinition> {
    let best: ServiceDefinition | undefined;
    let bestLen = -1;
    for (const s of await this.services()) {
      for (const p of s.prefixes) {
        if (prefixMatches(p, path) && p.length > bestLen) {
          best = s;
          bestLen = p.length;
        }
      }
    }
    if (!best) throw new GatewayError('invalidServiceError', `no service owns path ${path}`);
    return best;
  }

  async resolve(service: string | undefined, rawPath: string): Promise<{ def: ServiceDefinition; path: string; search: string }> {
    const { path, search } = checkPath(rawPath);
    if (service === undefined) return { def: await this.serviceForPath(path), path, search };
    const def = (await this.services()).find((s) => s.name === service) ?? (await this.broker.getService(service));
    if (!def) throw new GatewayError('invalidServiceError', `unknown service "${service}"`);
    if (!def.prefixes.some((p) => prefixMatches(p, path))) {
      const err = new GatewayError('invalidPathError', `path ${path} is outside the prefixes of service "${service}" (${def.prefixes.join(', ')})`);
      err.service = def.name; // a registered service (from the cache or the store): a safe metric label
      throw err;
    }
    return { def, path, search };
  }

  /**
   * Routes and calls the upstream. A GatewayError carries `service` when the
   * service is a registered one, found in the cache or in the store (it becomes
   * a metric label; a name the client made up must not).
   */
  async forward(req: ProxyRequest): Promise<ProxyResponse> {
    const { def, path, search } = await this.resolve(req.service, req.path);
    try {
      return await this.call(def, path, search, req);
    } catch (err) {
      if (err instanceof GatewayError) err.service = def.name;
      throw err;
    }
  }

  /** Calls the upstream; GatewayError('serverError') on timeout, refusal or an oversized answer. */
  private async call(def: ServiceDefinition, path: string, search: string, req: ProxyRequest): Promise<ProxyResponse> {
    const url = new URL(def.upstream.replace(/\/$/, '') + path + search);
    if (req.query) for (const [k, v] of Object.entries(req.query)) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers ?? {})) {
      const lk = k.toLowerCase();
      if (lk.startsWith('x-bifrost-') || DROPPED_REQUEST_HEADERS.has(lk) || /[\r\n]/.test(v)) continue;
      headers[lk] = v;
    }
    headers['x-access-token'] = req.token;
    headers['x-bifrost-user'] = req.claims.userId;
    headers['x-bifrost-team'] = req.claims.teamId;
    headers['x-bifrost-node'] = this.opts.nodeId;
    if (req.requestId) headers['x-request-id'] = req.requestId;
    const method = req.method.toUpperCase();
    let body: string | undefined;
    if (method !== 'GET' && method !== 'DELETE' && req.body !== undefined && req.body !== null) {
      body = typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    } else if (method === 'DELETE' && req.body !== undefined && req.body !== null) {
      body = JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (err) {
      const e = err as Error;
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        throw new GatewayError('serverError', `service "${def.name}" did not answer within ${this.opts.timeoutMs} ms`, 504);
      }
      const cause = (e as Error & { cause?: { code?: string } }).cause?.code;
      throw new GatewayError('serverError', `service "${def.name}" is unreachable${cause ? ` (${cause})` : ''}`, 502);
    }
    const buf = await this.readLimited(res, def.name);
    const outHeaders: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      if (SAFE_RESPONSE_HEADERS.has(k)) outHeaders[k] = v;
    });
    const text = buf.toString('utf8');
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    } else if (text.length === 0) {
      parsed = null;
    }
    return {
      status: res.status,
      headers: outHeaders,
      body: parsed,
      subscribe: splitTopics(res.headers.get('x-bifrost-subscribe')),
      unsubscribe: splitTopics(res.headers.get('x-bifrost-unsubscribe')),
      service: def.name,
    };
  }

  private async readLimited(res: Response, name: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    if (!res.body) return Buffer.alloc(0);
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        size += chunk.byteLength;
        if (size > this.opts.maxResponseBytes) {
          throw new GatewayError('serverError', `service "${name}" answered more than ${this.opts.maxResponseBytes} bytes`, 502);
        }
        chunks.push(Buffer.from(chunk));
      }
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      throw new GatewayError('serverError', `service "${name}" broke off its answer: ${(err as Error).message}`, 502);
    }
    return Buffer.concat(chunks);
  }
}
