/**
 * Bifrost's legacy endpoint under bad input, limits and drain, with a plain
 * socket.io-client 4 (what an unchanged client's transport is): malformed
 * virtual requests get an error ack and the socket stays; oversized messages
 * and floods are refused without affecting a well-behaved client; drain
 * closes transports spread over the window so the client library reconnects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import type { RunningGateway } from '../../gateway/gateway.ts';
import { privateCall, startTestGateway, token } from '../support/gateway.ts';
import { json, startUpstream } from '../support/upstream.ts';

let gw: RunningGateway;
let up: Awaited<ReturnType<typeof startUpstream>>;
const sockets: Socket[] = [];

function connect(opts: { reconnection?: boolean } = {}): Promise<Socket> {
  const s = io(gw.publicUrl, { path: '/socket.io/', transports: ['websocket'], reconnection: opts.reconnection ?? false, forceNew: true });
  sockets.push(s);
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}

function request(s: Socket, method: string, req: unknown): Promise<{ statusCode: number; body: any; headers: Record<string, string> }> {
  return s.timeout(5000).emitWithAck(method, req);
}

beforeAll(async () => {
  gw = await startTestGateway({ opRatePerSec: 20, opBurst: 40, maxLegacyMessageBytes: 64 * 1024 });
  up = await startUpstream((req, res) => {
    if (req.url.startsWith('/collection/c1')) return json(res, 200, { id: 'c1' }, { 'x-bifrost-subscribe': 'collection:c1' });
    json(res, 200, { ok: true, url: req.url });
  });
  await privateCall(gw.privateUrl, 'PUT', '/v1/services/sync', { upstream: up.url, prefixes: ['/'] });
});
afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await gw?.close();
  await up?.close();
});

describe('legacy endpoint', () => {
  it('answers malformed virtual requests with an error ack and keeps the socket', async () => {
    const s = await connect();
    const t = await token('lg', 't');
    expect(await request(s, 'get', 'not an object')).toMatchObject({ statusCode: 400, body: { error: { name: 'badRequest' } } });
    expect(await request(s, 'get', { method: 'get' })).toMatchObject({ statusCode: 400 });
    expect(await request(s, 'get', { url: 'no-slash', headers: {} })).toMatchObject({ statusCode: 400 });
    expect(await request(s, 'get', { url: '/x', headers: [1, 2] })).toMatchObject({ statusCode: 400 });
    expect(await request(s, 'get', { url: '/x', headers: { 'x-access-token': 'garbage' } })).toMatchObject({ statusCode: 403, body: { error: { name: 'authenticationError' } } });
    expect(await request(s, 'get', { url: '/../etc/passwd', headers: { 'x-access-token': t } })).toMatchObject({ statusCode: 400, body: { error: { name: 'invalidPathError' } } });
    s.emit('get', { url: '/no-ack' }); // no ack function: ignored
    expect(await request(s, 'get', { url: '/fine', headers: { 'x-access-token': t } })).toMatchObject({ statusCode: 200, body: { ok: true, url: '/fine' } });
    expect(s.connected).toBe(true);
  });

  it('subscribes through x-bifrost-subscribe and emits broker events the Sails way', async () => {
    const s = await connect();
    const got: unknown[] = [];
    s.on('collection', (d) => got.push(d));
    await request(s, 'get', { method: 'get', url: '/collection/c1', headers: { 'x-access-token': await token('lg2', 't') } });
    await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'collection:c1', event: 'collection', data: { verb: 'updated', id: 'c1', data: { name: 'n' } } });
    for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([{ verb: 'updated', id: 'c1', data: { name: 'n' } }]);
  });

  it('refuses to publish event names socket.io reserves, and keeps delivering to every legacy socket', async () => {
    const t = await token('lg-reserved', 't');
    const a = await connect();
    const b = await connect();
    const got: [string, unknown][] = [];
    for (const [name, s] of [['a', a], ['b', b]] as const) {
      s.on('collection', (d) => got.push([name, d]));
      expect(await request(s, 'get', { url: '/collection/c1', headers: { 'x-access-token': t } })).toMatchObject({ statusCode: 200 });
    }
    for (const event of ['disconnect', 'connect', 'connect_error', 'disconnecting', 'newListener', 'removeListener']) {
      const res = await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'collection:c1', event, data: { x: 1 } });
      expect(res.status, event).toBe(400);
      expect(res.body.error.code).toBe('badRequest');
      expect(res.body.error.message).toContain('reserved');
      expect(res.body.error.message).toContain('connect_error');
    }
    const res = await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'collection:c1', event: 'collection', data: { n: 'after' } });
    expect(res.status).toBe(200);
    await expect.poll(() => got.length, { timeout: 3000 }).toBe(2);
    expect(got.map(([name]) => name).sort()).toEqual(['a', 'b']);
    expect(a.connected && b.connected).toBe(true);
  });

  it('refuses a virtual request whose method is not one of the five verbs, and never makes it a metric label', async () => {
    const s = await connect();
    const t = await token('lg-method', 't');
    const bogus = `bogus${Math.random().toString(36).slice(2)}`;
    expect(await request(s, 'get', { method: bogus, url: '/x', headers: { 'x-access-token': t } })).toMatchObject({ statusCode: 400, body: { error: { name: 'badRequest' } } });
    expect(await request(s, 'post', { method: 42, url: '/x', headers: { 'x-access-token': t } })).toMatchObject({ statusCode: 400 });
    expect(await request(s, 'get', { method: 'PATCH', url: '/x', headers: { 'x-access-token': t } })).toMatchObject({ statusCode: 200 });
    expect(up.requests.at(-1)).toMatchObject({ method: 'PATCH', url: '/x' });
    const metrics = await (await fetch(gw.publicUrl + '/metrics')).text();
    expect(metrics).not.toContain(bogus);
    expect(metrics).toMatch(/bifrost_frames_received_total\{[^}]*protocol="legacy"[^}]*op="patch"/);
    expect(s.connected).toBe(true);
  });

  it('refuses an oversized message and a flood without harming another client', async () => {
    const t = await token('flood', 't');
    const good = await connect();
    const big = await connect();
    const closed = new Promise((r) => big.once('disconnect', r));
    big.emit('post', { url: '/x', headers: { 'x-access-token': t }, data: 'z'.repeat(100 * 1024) }, () => {});
    await closed;
    const flood = await connect();
    const answers = await Promise.all(Array.from({ length: 80 }, () => request(flood, 'get', { url: '/f', headers: { 'x-access-token': t } })));
    const throttled = answers.filter((a) => a.statusCode === 429);
    expect(throttled.length).toBeGreaterThan(0);
    expect(throttled[0]!.body.error.name).toBe('throttleError');
    expect(await request(good, 'get', { url: '/still', headers: { 'x-access-token': t } })).toMatchObject({ statusCode: 200 });
    const metrics = await (await fetch(gw.publicUrl + '/metrics')).text();
    expect(metrics).toMatch(/bifrost_frames_rejected_total\{[^}]*protocol="legacy"[^}]*reason="throttle"/);
    expect(metrics).toMatch(/bifrost_requests_total\{[^}]*protocol="legacy"/);
  });
});

describe('legacy drain', () => {
  it('closes legacy transports spread over the window; the clients reconnect by themselves', async () => {
    const other = await startTestGateway();
    try {
      const clients = await Promise.all(
        Array.from({ length: 40 }, () => {
          const s = io(other.publicUrl, { transports: ['websocket'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
          sockets.push(s);
          return new Promise<Socket>((r) => s.once('connect', () => r(s)));
        }),
      );
      const dropped: number[] = [];
      const reasons: string[] = [];
      for (const s of clients) s.once('disconnect', (reason) => (dropped.push(Date.now()), reasons.push(reason)));
      const started = Date.now();
      await other.drain(3000);
      // drain() returns once the node has closed every transport; each client hears of it a moment later.
      await expect.poll(() => dropped.length, { timeout: 2000 }).toBe(40);
      // A transport close, which socket.io clients answer by reconnecting.
      expect(new Set(reasons)).toEqual(new Set(['transport close']));
      const first = dropped.filter((at) => at - started < 500).length;
      expect(first).toBeLessThan(30);
      expect(Math.max(...dropped) - Math.min(...dropped)).toBeGreaterThan(1000);
      // Drained node refuses them, so they keep retrying (their own reconnect logic runs).
      await new Promise((r) => setTimeout(r, 500));
      expect(clients.every((s) => s.active)).toBe(true);
    } finally {
      await other.close();
    }
  });

  it('refuses new sessions with 503 and Retry-After while overloaded or draining, polling and WebSocket alike, and counts them', async () => {
    const rejected = async (g: RunningGateway, reason: string): Promise<number> => {
      const text = await (await fetch(g.publicUrl + '/metrics')).text();
      const m = new RegExp(`^bifrost_upgrades_rejected_total\\{[^}]*protocol="legacy"[^}]*reason="${reason}"[^}]*\\} (\\d+)`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    };
    const pollingHandshake = (g: RunningGateway) => fetch(`${g.publicUrl}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'http://app.example' } });
    const wsHandshake = (g: RunningGateway) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`${g.publicUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => {
          resolve(101);
          ws.close();
        });
        ws.on('error', () => undefined);
      });

    // Admitted on the healthy node.
    const ok = await pollingHandshake(gw);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/"sid"/);
    expect(await wsHandshake(gw)).toBe(101);

    const hot = await startTestGateway({ loadInflate: { connections: 2 } });
    try {
      const res = await pollingHandshake(hot);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('2');
      expect(res.headers.get('access-control-allow-origin')).toBe('http://app.example');
      expect(await res.json()).toMatchObject({ error: { code: 'unavailable', message: expect.stringContaining('overloaded (connections') } });
      expect(await wsHandshake(hot)).toBe(503);
      expect(await rejected(hot, 'overloaded')).toBe(2);
      // An unchanged client library keeps trying (it sees a connect error, not a refusal for good).
      const s = io(hot.publicUrl, { transports: ['websocket'], forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
      sockets.push(s);
      await new Promise<void>((resolve) => s.once('connect_error', () => resolve()));
      expect(s.active).toBe(true);
      s.disconnect();
    } finally {
      await hot.close();
    }

    const draining = await startTestGateway({});
    try {
      await draining.drain(100);
      const res = await pollingHandshake(draining);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toMatchObject({ error: { code: 'unavailable', message: expect.stringContaining('draining') } });
      expect(await rejected(draining, 'draining')).toBe(1);
    } finally {
      await draining.close();
    }
  });
});
