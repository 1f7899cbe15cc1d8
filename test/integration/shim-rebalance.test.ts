/**
 * Live rebalance: when the flag changes, connections whose decision changed
 * are closed at a bounded rate and the unchanged clients' own reconnect logic
 * lands them on their new backend; `drain: keep` leaves them; POST /api/drain
 * moves them by hand; long-polling sessions stay pinned to their backend.
 * A second real Sails app stands in for Bifrost (these tests are about routing).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { io as ioV4 } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import type { SyncReference } from '../../legacy/sync-app.ts';
import { startMarkedSyncPair, type MarkedSyncPair } from '../support/sync-pair.ts';
import { connectSailsIoClient, SAILS_SDK_QUERY, type LegacyClient } from '../support/legacy-clients.ts';
import type { ShimHandle, ShimOptions } from '../../proxy/shim.ts';
import { startTestShim } from '../support/test-shim.ts';
import { startSocketIoBackend } from '../support/socket-io-backend.ts';
import { FLAG_KEY, buildFlag } from '../../proxy/flags-file.ts';

const tokenSecret = 'shim-rebalance-test-secret';
const adminToken = 'shim-rebalance-admin-token';
let sync: SyncReference;
let standin: SyncReference;
let dir: string;

let pair: MarkedSyncPair | undefined;

beforeAll(async () => {
  ({ sync, standin, dir } = pair = await startMarkedSyncPair('shim-rebalance', tokenSecret));
});
afterAll(() => pair?.close());

async function shimWith(percent: number, opts: Partial<ShimOptions> = {}): Promise<ShimHandle> {
  const setup = { dir, syncUrl: sync.url, bifrostUrls: [standin.url], tokenSecret, adminToken };
  return (await startTestShim(setup, { percent }, opts)).shim;
}

async function setPercent(shim: ShimHandle, percent: number): Promise<void> {
  const res = await fetch(`${shim.adminUrl}/api/rollout`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ percent }),
  });
  expect(res.status).toBe(200);
}

async function rollout(shim: ShimHandle): Promise<{ connections: { sync: number; bifrost: number }; drain: { closed: number; queued: number } }> {
  return (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as never;
}

async function landedOn(client: LegacyClient): Promise<string> {
  const res = await client.request('get', '/collection/marker');
  return (res.body as { name?: string } | undefined)?.name ?? `status ${res.statusCode}`;
}

async function connectUser(shim: ShimHandle, userId: string): Promise<LegacyClient> {
  const token = await signAccessToken(tokenSecret, { userId, teamId: `team-${userId}` });
  const init = (await (await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': token } })).json()) as { syncserver_url: string };
  return connectSailsIoClient({ url: init.syncserver_url, token, reconnectionDelayMs: 100, reconnectionDelayMaxMs: 300 });
}

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('live rebalance (Sails stand-in for Bifrost)', () => {
  it('ramp 0 → 25 → 50 → 100 with 100 connected clients: all end on the Bifrost side, each reconnected at most once; rollback 100 → 0 the same', async () => {
    const shim = await shimWith(0, { rebalanceRate: 200 });
    const clients: LegacyClient[] = [];
    try {
      for (let k = 0; k < 100; k += 20) {
        clients.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => connectUser(shim, `ramp-${k + i}`)))));
      }
      expect((await rollout(shim)).connections).toMatchObject({ sync: 100, bifrost: 0 });
      for (const percent of [25, 50, 100]) {
        await setPercent(shim, percent);
        await until(`connections to settle at ${percent}%`, async () => {
          const r = await rollout(shim);
          return r.drain.queued === 0 && r.connections.sync + r.connections.bifrost === 100 && clients.every((c) => c.isConnected());
        });
      }
      await until('all 100 on the Bifrost side', async () => (await rollout(shim)).connections.bifrost === 100);
      const where = await Promise.all(clients.map(landedOn));
      expect(where.every((w) => w === 'bifrost-standin')).toBe(true);
      for (const c of clients) expect(c.connectCount()).toBe(2);

      await setPercent(shim, 0);
      await until('all 100 back on Sync', async () => (await rollout(shim)).connections.sync === 100 && clients.every((c) => c.isConnected()));
      expect((await Promise.all(clients.map(landedOn))).every((w) => w === 'sync')).toBe(true);
      for (const c of clients) expect(c.connectCount()).toBe(3);
      const metrics = await (await fetch(`${shim.adminUrl}/metrics`)).text();
      expect(metrics).toMatch(/bifrost_shim_rebalanced_connections_total\{from="sync",to="bifrost",trigger="flag-change"\} 100/);
      expect(metrics).toMatch(/bifrost_shim_rebalanced_connections_total\{from="bifrost",to="sync",trigger="flag-change"\} 100/);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
    }
  }, 240_000);

  it('closes at the bounded rate, not all at once', async () => {
    const shim = await shimWith(0, { rebalanceRate: 10 });
    const clients: LegacyClient[] = [];
    try {
      clients.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => connectUser(shim, `rate-${i}`)))));
      await setPercent(shim, 100);
      await new Promise((r) => setTimeout(r, 300));
      // At 10/s with gaps of at least 50 ms, at most 1 + 300/50 = 7 can have been closed by now.
      expect((await rollout(shim)).drain.closed).toBeLessThanOrEqual(7);
      await until('all 20 moved', async () => (await rollout(shim)).connections.bifrost === 20, 20_000);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
    }
  });

  it('drain "keep" leaves live sockets where they are until POST /api/drain moves them', async () => {
    const shim = await shimWith(0, { drain: 'keep' });
    const clients: LegacyClient[] = [];
    try {
      clients.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => connectUser(shim, `keep-${i}`)))));
      await setPercent(shim, 100);
      await new Promise((r) => setTimeout(r, 500));
      expect((await rollout(shim)).connections).toMatchObject({ sync: 10, bifrost: 0 });
      expect(clients.every((c) => c.connectCount() === 1)).toBe(true);
      const res = await fetch(`${shim.adminUrl}/api/drain`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
        body: JSON.stringify({ scope: 'changed' }),
      });
      expect(res.status).toBe(202);
      expect(await res.json()).toMatchObject({ queued: 10 });
      await until('all 10 moved by the drain', async () => (await rollout(shim)).connections.bifrost === 10 && clients.every((c) => c.isConnected()));
      expect((await Promise.all(clients.map(landedOn))).every((w) => w === 'bifrost-standin')).toBe(true);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
    }
  });

  it('drain (SIGTERM) closes live sockets spread over the window, refuses new ones, then stops', async () => {
    const shim = await shimWith(0);
    const clients: LegacyClient[] = [];
    try {
      clients.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => connectUser(shim, `drain-${i}`)))));
      const url = new URL(shim.url);
      const drained = shim.drain(1000);
      await until('every client disconnected', () => clients.every((c) => !c.isConnected()), 5000);
      await drained;
      expect(shim.openSockets()).toEqual({ client: 0, backend: 0 });
      // nothing listens any more
      const refused = await fetch(`http://${url.host}/godserver/init`).then(
        () => false,
        () => true,
      );
      expect(refused).toBe(true);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
    }
  });

  it('live LaunchDarkly mode: a flag change streamed by LaunchDarkly moves live sockets; PUT /api/rollout is refused with 409', async () => {
    // A stand-in for LaunchDarkly's streaming endpoint (what a Relay Proxy also serves): SSE put/patch on /all.
    const streams = new Set<http.ServerResponse>();
    const flag = (percent: number, version: number) => buildFlag({ percent, bucketBy: 'user' }, 'live-salt', version);
    const ld = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: put\ndata: ${JSON.stringify({ path: '/', data: { flags: { [FLAG_KEY]: flag(0, 1) }, segments: {} } })}\n\n`);
      streams.add(res);
      res.on('close', () => streams.delete(res));
    });
    await new Promise<void>((r) => ld.listen(0, '127.0.0.1', r));
    const ldUrl = `http://127.0.0.1:${(ld.address() as AddressInfo).port}`;
    const shim = await shimWith(0, { ldSdkKey: 'sdk-relay-test', ldSdkOptions: { streamUri: ldUrl, baseUri: ldUrl, eventsUri: ldUrl, sendEvents: false, diagnosticOptOut: true } });
    const clients: LegacyClient[] = [];
    try {
      clients.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => connectUser(shim, `live-${i}`)))));
      expect((await rollout(shim)).connections).toMatchObject({ sync: 10, bifrost: 0 });
      const put = await fetch(`${shim.adminUrl}/api/rollout`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
        body: JSON.stringify({ percent: 50 }),
      });
      expect(put.status).toBe(409);
      expect(((await put.json()) as { error: { code: string } }).error.code).toBe('conflict');
      for (const s of streams) s.write(`event: patch\ndata: ${JSON.stringify({ path: `/flags/${FLAG_KEY}`, data: flag(100, 2) })}\n\n`);
      await until('all 10 moved by the streamed change', async () => (await rollout(shim)).connections.bifrost === 10 && clients.every((c) => c.isConnected()));
      expect((await Promise.all(clients.map(landedOn))).every((w) => w === 'bifrost-standin')).toBe(true);
      expect(((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as { source: string; percent: unknown }).source).toBe('launchdarkly');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
      for (const s of streams) s.destroy();
      await new Promise<void>((r) => ld.close(() => r()));
    }
  });

  it('a long-polling session stays on the backend it started on (pinned by sid), also through its upgrade to WebSocket', async () => {
    // The reference Sails app only speaks the websocket transport (Sails' default), so two plain
    // socket.io 4 servers with polling enabled stand in for Sync and Bifrost here; each answers
    // a virtual GET with its own name.
    const backends = await Promise.all(['sync', 'bifrost-standin'].map((name) => startSocketIoBackend(name)));
    const setup = { dir, syncUrl: backends[0]!.url, bifrostUrls: [backends[1]!.url], tokenSecret, adminToken };
    const { shim } = await startTestShim(setup, { percent: 100 }, { godserverUrl: sync.url, drain: 'keep' });
    const token = await signAccessToken(tokenSecret, { userId: 'poller', teamId: 't' });
    const init = (await (await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': token } })).json()) as { syncserver_url: string };
    const target = new URL(init.syncserver_url);
    const query = { ...Object.fromEntries(target.searchParams), ...SAILS_SDK_QUERY };
    target.search = '';
    const ask = async (socket: ReturnType<typeof ioV4>) =>
      ((await socket.timeout(5000).emitWithAck('get', { method: 'get', url: '/collection/marker', headers: {}, data: {} })) as { body: { name: string } }).body.name;
    const polling = ioV4(target.href, { query, transports: ['polling'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300 });
    const upgrading = ioV4(target.href, { query, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300 });
    try {
      await until('both connected', () => polling.connected && upgrading.connected);
      expect(await ask(polling)).toBe('bifrost-standin');
      await until('upgrade to websocket', () => upgrading.io.engine.transport.name === 'websocket');
      expect(await ask(upgrading)).toBe('bifrost-standin');
      expect(backends[1]!.handshakeQueries.every((q) => q.bf_route === undefined && q.__sails_io_sdk_version === '1.2.1')).toBe(true);
      // The flag moves everyone to Sync, live sockets are kept: the sessions must stay where they are.
      await setPercent(shim, 0);
      for (let i = 0; i < 5; i++) expect(await ask(polling)).toBe('bifrost-standin');
      expect(await ask(upgrading)).toBe('bifrost-standin');
      expect((await rollout(shim)).connections).toMatchObject({ bifrost: 2, sync: 0 });
      // A drain by hand moves both: the polling session is told it is unknown, the WebSocket is closed.
      const res = await fetch(`${shim.adminUrl}/api/drain`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } });
      expect(await res.json()).toMatchObject({ queued: 2 });
      await until('both back on Sync', async () => polling.connected && upgrading.connected && (await rollout(shim)).connections.sync === 2);
      expect(await ask(polling)).toBe('sync');
      expect(await ask(upgrading)).toBe('sync');
    } finally {
      polling.disconnect();
      upgrading.disconnect();
      await shim.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});

