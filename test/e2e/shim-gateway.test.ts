/**
 * The shim in front of the real stack: the reference Sync (Sails, dual-publish
 * bridge on) and real Bifrost gateway nodes (legacy socket.io endpoint, Redis
 * broker, service `sync` → Sync). Unchanged clients (sails.io.js 1.2.1 on
 * socket.io-client 2, and socket.io-client 4) connect through the shim only.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import { startGateway, type RunningGateway } from '../../gateway/gateway.ts';
import { startSyncReference, type SyncReference } from '../../legacy/sync-app.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../support/redis.ts';
import { connectSailsIoClient, connectSocketIo4Client, type LegacyClient } from '../support/legacy-clients.ts';
import type { ShimHandle, ShimOptions } from '../../proxy/shim.ts';
import { startTestShim } from '../support/test-shim.ts';

const tokenSecret = 'shim-gateway-e2e-secret';
const serviceToken = 'shim-gateway-e2e-service';
const adminToken = 'shim-gateway-e2e-admin';

let redisUrl: string;
let prefix: string;
let gwA: RunningGateway;
let gwB: RunningGateway;
let sync: SyncReference;
let dir: string;

// In-process nodes share this process's CPU and event loop with Sails and hundreds of clients, so
// their CPU and event-loop-delay dimensions measure the test, not the node: those targets are lifted.
const startNode = (nodeId: string, extra: Parameters<typeof startGateway>[0] = {}) =>
  startGateway({
    port: 0,
    privatePort: 0,
    host: '127.0.0.1',
    tokenSecret,
    serviceToken,
    redisUrl,
    redisPrefix: prefix,
    logLevel: 'silent',
    nodeId,
    load: { cpu: 1_000, eventLoopDelay: 1_000_000 },
    ...extra,
  });

beforeAll(async () => {
  redisUrl = testRedisUrl();
  prefix = uniquePrefix('shim-e2e');
  [gwA, gwB] = await Promise.all([startNode('gw-a'), startNode('gw-b')]);
  sync = await startSyncReference({ port: 0, tokenSecret, log: silentLogger, bifrostPrivateUrl: gwA.privateUrl, serviceToken, env: {} });
  const reg = await fetch(`${gwA.privateUrl}/v1/services/sync`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upstream: sync.url, prefixes: ['/'] }),
  });
  expect(reg.ok).toBe(true);
  const seed = await signAccessToken(tokenSecret, { userId: 'seeder', teamId: 'seeders' });
  const res = await fetch(`${sync.url}/collection`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-access-token': seed },
    body: JSON.stringify({ id: 'c1', name: 'v0', workspace: 'w1', data: {} }),
  });
  expect(res.status).toBe(200);
  dir = await mkdtemp(join(tmpdir(), 'bifrost-shim-e2e-'));
});
afterAll(async () => {
  await sync?.close();
  await Promise.all([gwA?.close(), gwB?.close()]);
  await deletePrefix(redisUrl, prefix);
  await rm(dir, { recursive: true, force: true });
});

async function shimWith(percent: number, opts: Partial<ShimOptions> = {}): Promise<ShimHandle> {
  const setup = { dir, syncUrl: sync.url, bifrostUrls: [gwA.publicUrl, gwB.publicUrl], tokenSecret, adminToken };
  return (await startTestShim(setup, { percent }, opts)).shim;
}

interface Rollout {
  connections: { sync: number; bifrost: number; nodes: { id: string; connections: number }[] };
  drain: { queued: number };
}
async function rollout(shim: ShimHandle): Promise<Rollout> {
  return (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as Rollout;
}
async function setPercent(shim: ShimHandle, percent: number): Promise<void> {
  const res = await fetch(`${shim.adminUrl}/api/rollout`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ percent }),
  });
  expect(res.status).toBe(200);
}
async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function connectUser(shim: ShimHandle, userId: string, kind: 'sails' | 'v4' = 'sails'): Promise<LegacyClient> {
  const token = await signAccessToken(tokenSecret, { userId, teamId: `team-${userId}` });
  const init = (await (await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': token } })).json()) as { syncserver_url: string };
  const connect = kind === 'sails' ? connectSailsIoClient : connectSocketIo4Client;
  return connect({ url: init.syncserver_url, token, reconnectionDelayMs: 100, reconnectionDelayMaxMs: 300 });
}

/** Updates c1 through Sync's HTTP API (what another Sync user's action does). */
async function updateC1(name: string): Promise<void> {
  const token = await signAccessToken(tokenSecret, { userId: 'writer', teamId: 'w' });
  const res = await fetch(`${sync.url}/collection/c1`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json', 'x-access-token': token },
    body: JSON.stringify({ name }),
  });
  expect(res.status).toBe(200);
}

const isUpdate = (name: string) => (d: { verb?: string; id?: string; data?: { name?: string } }) => d.verb === 'updated' && d.id === 'c1' && d.data?.name === name;

describe('shim in front of Sync and real Bifrost nodes', () => {
  it('100%: both client stacks land on a Bifrost node through the shim, read c1 and receive Sync-side updates', async () => {
    const shim = await shimWith(100);
    const clients: LegacyClient[] = [];
    try {
      clients.push(await connectUser(shim, 'solo-sails', 'sails'), await connectUser(shim, 'solo-v4', 'v4'));
      const r = await rollout(shim);
      expect(r.connections).toMatchObject({ sync: 0, bifrost: 2 });
      expect(r.connections.nodes.reduce((a, n) => a + n.connections, 0)).toBe(2);
      for (const c of clients) {
        const res = await c.request('get', '/collection/c1');
        expect(res.statusCode).toBe(200);
        expect((res.body as { id: string }).id).toBe('c1');
      }
      await updateC1('solo-1');
      for (const c of clients) await c.waitFor('collection', isUpdate('solo-1'), 10_000);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
    }
  });

  it('ramp 0 → 25 → 50 → 100 with 100 clients, then rollback to 0: each client moves at most once per direction, and every update reaches every subscribed client across Sync and Bifrost', async () => {
    const shim = await shimWith(0, { rebalanceRate: 200 });
    const clients: LegacyClient[] = [];
    const seenConnects = new Map<LegacyClient, number>();
    const resubscribe = async () => {
      // Unchanged apps re-read what they show after a reconnect: that is what subscribes them again.
      await Promise.all(
        clients.map(async (c) => {
          if (seenConnects.get(c) !== c.connectCount()) {
            const res = await c.request('get', '/collection/c1');
            expect(res.statusCode).toBe(200);
            seenConnects.set(c, c.connectCount());
          }
        }),
      );
    };
    try {
      for (let k = 0; k < 100; k += 20) clients.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => connectUser(shim, `ramp-${k + i}`)))));
      await resubscribe();
      let version = 0;
      /**
       * An update made by Sync's HTTP API, or over the socket of one of the clients; every client must
       * see it (Sails does not echo a change to the socket that made it: that one has the response).
       */
      const everyoneGets = async (via?: LegacyClient) => {
        const name = `ramp-v${++version}`;
        if (via) expect((await via.request('patch', '/collection/c1', { name })).statusCode).toBe(200);
        else await updateC1(name);
        await Promise.all(clients.filter((c) => c !== via).map((c) => c.waitFor('collection', isUpdate(name), 30_000)));
      };
      const routeOf = async (i: number) => {
        const token = await signAccessToken(tokenSecret, { userId: `ramp-${i}`, teamId: `team-ramp-${i}` });
        return (await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': token } })).headers.get('x-bifrost-route');
      };
      await everyoneGets();
      for (const percent of [25, 50, 100, 0]) {
        await setPercent(shim, percent);
        const want = percent === 0 ? { sync: 100, bifrost: 0 } : percent === 100 ? { sync: 0, bifrost: 100 } : undefined;
        await until(`settled at ${percent}%`, async () => {
          const r = await rollout(shim);
          const total = r.connections.sync + r.connections.bifrost;
          return r.drain.queued === 0 && total === 100 && clients.every((c) => c.isConnected()) && (!want || (r.connections.sync === want.sync && r.connections.bifrost === want.bifrost));
        });
        await resubscribe();
        const r = await rollout(shim);
        if (percent === 50) {
          expect(r.connections.bifrost).toBeGreaterThan(25);
          expect(r.connections.sync).toBeGreaterThan(25);
          // Both directions: a client on Bifrost updates (Bifrost → service sync → Sync), then a client on Sync.
          const routes = await Promise.all(clients.map((_, i) => routeOf(i)));
          await everyoneGets(clients[routes.indexOf('bifrost')]);
          await everyoneGets(clients[routes.indexOf('sync')]);
        }
        // Both populations present (or one, at the ends): the update reaches all of them.
        await everyoneGets();
        if (percent === 100) for (const c of clients) expect(c.connectCount()).toBe(2);
      }
      for (const c of clients) expect(c.connectCount()).toBe(3);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
    }
  }, 300_000);

  it('spreads sockets over the nodes by load, and skips an overloaded node', async () => {
    const hot = await startNode('gw-hot', { loadInflate: { connections: 5 } });
    const shim = await shimWith(100, { bifrostUrls: [gwA.publicUrl, gwB.publicUrl, hot.publicUrl] });
    const clients: LegacyClient[] = [];
    try {
      for (let k = 0; k < 40; k += 20) clients.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => connectUser(shim, `spread-${k + i}`)))));
      const r = await rollout(shim);
      const byNode = Object.fromEntries(r.connections.nodes.map((n) => [n.id, n.connections]));
      expect(byNode['gw-hot']).toBe(0);
      expect(byNode['gw-a']! + byNode['gw-b']!).toBe(40);
      expect(byNode['gw-a']).toBeGreaterThan(0);
      expect(byNode['gw-b']).toBeGreaterThan(0);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
      await hot.close();
    }
  });

  it('a node that refuses the connection is skipped for another node, not for Sync', async () => {
    // A node that looks idle (so it is always chosen first) and then goes away before the next /load poll.
    const ghost = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ node: 'gw-ghost', loadFactor: 0, draining: false }));
    });
    await new Promise<void>((r) => ghost.listen(0, '127.0.0.1', r));
    const ghostUrl = `http://127.0.0.1:${(ghost.address() as AddressInfo).port}`;
    const shim = await shimWith(100, { bifrostUrls: [ghostUrl, gwA.publicUrl], loadPollIntervalMs: 600_000 });
    await new Promise<void>((r) => ghost.close(() => r()));
    const clients: LegacyClient[] = [];
    try {
      clients.push(await connectUser(shim, 'retry-1'), await connectUser(shim, 'retry-2'));
      const r = await rollout(shim);
      expect(r.connections).toMatchObject({ sync: 0, bifrost: 2 });
      expect(r.connections.nodes.find((n) => n.id === 'gw-a')?.connections).toBe(2);
      const metrics = await (await fetch(`${shim.adminUrl}/metrics`)).text();
      expect(metrics).toMatch(/bifrost_shim_upgrades_total\{backend="bifrost",outcome="refused"\} [1-9]/);
      expect(metrics).not.toMatch(/bifrost_shim_fallbacks_total\{[^}]*\} [1-9]/);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await shim.close();
    }
  });

  it('direct mode: the client is sent to a Bifrost node itself and works there without the shim', async () => {
    const shim = await shimWith(100, { mode: 'direct' });
    try {
      const token = await signAccessToken(tokenSecret, { userId: 'direct', teamId: 't' });
      const res = await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': token } });
      expect(res.headers.get('x-bifrost-route')).toBe('bifrost');
      const body = (await res.json()) as { syncserver_url: string };
      expect([gwA.publicUrl, gwB.publicUrl]).toContain(body.syncserver_url);
      const client = await connectSailsIoClient({ url: body.syncserver_url, token });
      try {
        expect((await client.request('get', '/collection/c1')).statusCode).toBe(200);
        await updateC1('direct-1');
        await client.waitFor('collection', isUpdate('direct-1'), 10_000);
      } finally {
        await client.close();
      }
      expect((await rollout(shim)).connections).toMatchObject({ sync: 0, bifrost: 0 });
    } finally {
      await shim.close();
    }
  });
});
