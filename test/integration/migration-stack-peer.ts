/**
 * Test peers for the migration checks: small real servers that speak the
 * contract of ARCHITECTURE.md — a Sync app (collection blueprints,
 * x-access-token, x-bifrost-subscribe on single-record reads, a dual-publish
 * bridge to the private API), a Bifrost node (private API: services, proxy,
 * publish; native protocol on /ws) and a shim admin API (/api/rollout,
 * /metrics). Each behaviour a check verifies can be switched off, so tests
 * see checks fail for the right reason. Not mocks of our code: peers the CLI
 * talks to over the network, as it talks to `bifrost up`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { verifyAccessToken } from '../../gateway/token.ts';

const repo = path.resolve(import.meta.dirname, '../..');

export const PEER_SECRET = 'migration-peer-token-secret';
export const PEER_SERVICE_TOKEN = 'migration-peer-service-token';

export interface PeerKnobs {
  /** Sync publishes record changes to Bifrost's private API. */
  bridge: boolean;
  /** Sync adds x-bifrost-subscribe to single-record reads. */
  subscribeHeader: boolean;
  /** Bifrost's proxy alters bodies (to make parity fail). */
  proxyTamper: boolean;
  percent: number;
  /** Shim counters for bifrost: ok and error upgrades added per /metrics scrape. */
  okPerScrape: number;
  errorsPerScrape: number;
  /** Bifrost upgrades the shim rejected (a failure) and the client aborted (neither), per scrape. */
  rejectedPerScrape: number;
  abortedPerScrape: number;
  /** The flag version `GET /api/rollout` reports (null: none). */
  version: number | null;
}

export interface StackPeer {
  syncUrl: string;
  privateUrl: string;
  gatewayUrl: string;
  adminUrl: string;
  knobs: PeerKnobs;
  services: Map<string, { name: string; upstream: string; prefixes: string[] }>;
  records: Map<string, Record<string, unknown>>;
  published: Array<{ topic: string; event: string; data: unknown }>;
  close(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, body: unknown, res: http.ServerResponse) => Promise<void> | void;

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

async function listen(handler: Handler): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        return send(res, 400, { code: 'badRequest', message: 'bad JSON' });
      }
      Promise.resolve(handler(req, body, res)).catch((err: Error) => send(res, 500, { code: 'serverError', message: err.message }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  const p = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return path === p || path.startsWith(p + '/');
}

export async function startStackPeer(initial: Partial<PeerKnobs> = {}): Promise<StackPeer> {
  const knobs: PeerKnobs = { bridge: true, subscribeHeader: true, proxyTamper: false, percent: 0, okPerScrape: 0, errorsPerScrape: 0, rejectedPerScrape: 0, abortedPerScrape: 0, version: null, ...initial };
  const records = new Map<string, Record<string, unknown>>();
  const published: StackPeer['published'] = [];
  const services = new Map<string, { name: string; upstream: string; prefixes: string[] }>();
  const sockets = new Set<{ ws: WebSocket; topics: Set<string>; granted: Set<string> }>();
  let privateUrl = '';

  // --- Sync --------------------------------------------------------------
  const publish = async (id: string, data: unknown) => {
    if (!knobs.bridge) return;
    await fetch(`${privateUrl}/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PEER_SERVICE_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ topic: `collection:${id}`, event: 'collection', data }),
    });
  };
  const sync = await listen(async (req, body, res) => {
    try {
      await verifyAccessToken(PEER_SECRET, req.headers['x-access-token'] as string | undefined);
    } catch {
      return send(res, 401, { error: 'unauthorized' });
    }
    const url = new URL(req.url!, 'http://x');
    const m = /^\/collection(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return send(res, 404, 'Not Found');
    const id = m[1] ? decodeURIComponent(m[1]) : undefined;
    const now = Date.now();
    if (!id && req.method === 'GET') {
      const ws = url.searchParams.get('workspace');
      return send(res, 200, [...records.values()].filter((r) => !ws || r.workspace === ws));
    }
    if (!id && req.method === 'POST') {
      const rec = { workspace: null, name: null, data: null, ...(body as object), id: (body as { id?: string })?.id ?? randomUUID(), createdAt: now, updatedAt: now };
      records.set(rec.id as string, rec);
      await publish(rec.id as string, { verb: 'created', id: rec.id, data: rec });
      return send(res, 200, rec);
    }
    const rec = id ? records.get(id) : undefined;
    if (!rec) return send(res, 404, 'Not Found');
    if (req.method === 'GET') return send(res, 200, rec, knobs.subscribeHeader ? { 'x-bifrost-subscribe': `collection:${id}` } : {});
    if (req.method === 'PATCH' || req.method === 'PUT') {
      const previous = { ...rec };
      Object.assign(rec, body as object, { id, updatedAt: now + 1 });
      await publish(id!, { verb: 'updated', id, data: body, previous });
      return send(res, 200, rec);
    }
    if (req.method === 'DELETE') {
      records.delete(id!);
      await publish(id!, { verb: 'destroyed', id, previous: rec });
      return send(res, 200, rec);
    }
    return send(res, 404, 'Not Found');
  });

  // --- Bifrost: routing, proxy, publish -----------------------------------
  const forward = async (service: string, method: string, path: string, query: Record<string, string> | undefined, body: unknown, token: string) => {
    const def = services.get(service);
    if (!def) return { error: { status: 404, code: 'invalidServiceError', message: `unknown service "${service}"` } };
    if (!def.prefixes.some((p) => prefixMatches(p, path))) return { error: { status: 404, code: 'invalidPathError', message: `path ${path} outside ${service}` } };
    const u = new URL(def.upstream.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(query ?? {})) u.searchParams.set(k, String(v));
    const r = await fetch(u, { method, headers: { 'x-access-token': token, ...(body !== null && body !== undefined ? { 'content-type': 'application/json' } : {}) }, body: body !== null && body !== undefined ? JSON.stringify(body) : undefined });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* text */
    }
    if (knobs.proxyTamper && parsed && typeof parsed === 'object' && !Array.isArray(parsed)) parsed = { ...parsed, name: 'tampered' };
    return { status: r.status, headers: Object.fromEntries(r.headers.entries()), body: parsed, subscribe: (r.headers.get('x-bifrost-subscribe') ?? '').split(',').map((s) => s.trim()).filter(Boolean) };
  };
  const fanOut = (topic: string, event: string, data: unknown) => {
    published.push({ topic, event, data });
    for (const s of sockets) if (s.topics.has(topic)) s.ws.send(JSON.stringify({ op: 'event', topic, event, offset: String(published.length), data }));
  };
  const priv = await listen(async (req, body, res) => {
    if (req.headers.authorization !== `Bearer ${PEER_SERVICE_TOKEN}`) return send(res, 401, { code: 'unauthorized', message: 'service token' });
    const url = new URL(req.url!, 'http://x');
    const sm = /^\/v1\/services(?:\/([^/]+))?$/.exec(url.pathname);
    if (sm) {
      const name = sm[1];
      if (!name && req.method === 'GET') return send(res, 200, { services: [...services.values()] });
      if (name && req.method === 'PUT') {
        const def = { name, ...(body as { upstream: string; prefixes: string[] }) };
        services.set(name, def);
        return send(res, 200, def);
      }
      if (name && req.method === 'GET') return services.has(name) ? send(res, 200, services.get(name)) : send(res, 404, { code: 'invalidServiceError', message: `unknown service "${name}"` });
    }
    if (url.pathname === '/v1/publish' && req.method === 'POST') {
      const b = body as { topic: string; event: string; data: unknown };
      fanOut(b.topic, b.event, b.data);
      return send(res, 200, { offset: String(published.length), epoch: 'peer' });
    }
    if (url.pathname === '/v1/proxy' && req.method === 'POST') {
      const token = req.headers['x-access-token'] as string;
      try {
        await verifyAccessToken(PEER_SECRET, token);
      } catch {
        return send(res, 401, { code: 'unauthorized', message: 'x-access-token' });
      }
      const b = body as { service: string; method: string; path: string; query?: Record<string, string>; body?: unknown };
      const r = await forward(b.service, b.method, b.path, b.query, b.body, token);
      if (r.error) return send(res, r.error.status, { code: r.error.code, message: r.error.message });
      return send(res, 200, { status: r.status, headers: r.headers, body: r.body });
    }
    return send(res, 404, { code: 'notFound', message: url.pathname });
  });
  privateUrl = priv.url;

  // --- Bifrost: native protocol on /ws ----------------------------------
  const gateway = await listen((_req, _b, res) => send(res, 404, {}));
  const wss = new WebSocketServer({ noServer: true });
  gateway.server.on('upgrade', (req, socket, head) => {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    verifyAccessToken(PEER_SECRET, token).then(
      () => {
        if (new URL(req.url!, 'http://x').pathname !== '/ws') return socket.destroy();
        wss.handleUpgrade(req, socket, head, (ws) => {
          const conn = { ws, topics: new Set<string>(), granted: new Set<string>() };
          sockets.add(conn);
          ws.on('close', () => sockets.delete(conn));
          ws.on('message', async (raw) => {
            const f = JSON.parse(raw.toString()) as { id: number; op: string; topic?: string; service?: string; method?: string; path?: string; query?: Record<string, string>; body?: unknown };
            if (f.op === 'subscribe') {
              if (!conn.granted.has(f.topic!)) return ws.send(JSON.stringify({ id: f.id, op: 'error', code: 'forbiddenError', message: `not granted ${f.topic}` }));
              conn.topics.add(f.topic!);
              return ws.send(JSON.stringify({ id: f.id, op: 'ok', recovered: false }));
            }
            if (f.op === 'request') {
              const r = await forward(f.service!, f.method!, f.path!, f.query, f.body, token);
              if (r.error) return ws.send(JSON.stringify({ id: f.id, op: 'error', code: r.error.code, message: r.error.message }));
              for (const t of r.subscribe) {
                conn.granted.add(t);
                conn.topics.add(t);
              }
              return ws.send(JSON.stringify({ id: f.id, op: 'response', status: r.status, headers: r.headers, body: r.body }));
            }
            ws.send(JSON.stringify({ id: f.id, op: 'error', code: 'badRequest', message: 'unknown op' }));
          });
        });
      },
      () => {
        socket.write('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        socket.destroy();
      },
    );
  });

  // --- Shim admin API ----------------------------------------------------
  let ok = 0;
  let errors = 0;
  let rejected = 0;
  let aborted = 0;
  const admin = await listen((req, _b, res) => {
    if (req.url === '/api/rollout') return send(res, 200, { percent: knobs.percent, bucketBy: 'user', ...(knobs.version !== null ? { version: knobs.version } : {}) });
    if (req.url === '/metrics') {
      ok += knobs.okPerScrape;
      errors += knobs.errorsPerScrape;
      rejected += knobs.rejectedPerScrape;
      aborted += knobs.abortedPerScrape;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(
        `# TYPE bifrost_shim_upgrades_total counter\nbifrost_shim_upgrades_total{backend="bifrost",outcome="ok"} ${ok}\nbifrost_shim_upgrades_total{backend="bifrost",outcome="error"} ${errors}\n` +
          `bifrost_shim_upgrades_total{backend="bifrost",outcome="rejected"} ${rejected}\nbifrost_shim_upgrades_total{backend="bifrost",outcome="aborted"} ${aborted}\nbifrost_shim_upgrades_total{backend="sync",outcome="error"} 999\n`,
      );
      return;
    }
    return send(res, 404, {});
  });

  const servers = [sync.server, priv.server, gateway.server, admin.server];
  return {
    syncUrl: sync.url,
    privateUrl: priv.url,
    gatewayUrl: gateway.url,
    adminUrl: admin.url,
    knobs,
    services,
    records,
    published,
    async close() {
      for (const s of sockets) s.ws.terminate();
      wss.close();
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((r) => {
              s.closeAllConnections();
              s.close(() => r());
            }),
        ),
      );
    },
  };
}

/** The shipped collections manifest, pointed at the peer's Sync and with a quick canary. */
export async function writeCollectionsFixture(dir: string, syncUrl: string, canary = '{ forSeconds: 0, sampleSeconds: 0.2 }'): Promise<void> {
  await mkdir(path.join(dir, 'migrations'), { recursive: true });
  await mkdir(path.join(dir, 'playbooks'), { recursive: true });
  await copyFile(path.join(repo, 'playbooks/sync-to-bifrost.yaml'), path.join(dir, 'playbooks/sync-to-bifrost.yaml'));
  const manifest = (await readFile(path.join(repo, 'migrations/collections.yaml'), 'utf8')).replace('upstream: http://127.0.0.1:1337', `upstream: ${syncUrl}`);
  await writeFile(path.join(dir, 'migrations/collections.yaml'), `${manifest}stepOptions:\n  canary: ${canary}\n  dual-publish: { eventTimeoutMs: 1500 }\n  subscribe-headers: { eventTimeoutMs: 800 }\n`);
}
