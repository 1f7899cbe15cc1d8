/**
 * Legacy clients through the shim during a rolling restart of three gateway
 * processes: every unchanged client (sails.io.js 1.2.1 on socket.io-client 2)
 * is moved by the drain, reconnects through the shim to a live node by its
 * own logic, and ends connected and served; requests fail only while a
 * client's own socket is down (the client retries them after it reconnects).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import { startSyncReference, type SyncReference } from '../../legacy/sync-app.ts';
import { startShim, type ShimHandle } from '../../proxy/shim.ts';
import { writeRollout } from '../../proxy/flags-file.ts';
import { connectSailsIoClient, type LegacyClient } from '../support/legacy-clients.ts';
import { spawnGateway, TEST_SECRET, TEST_SERVICE_TOKEN, type GatewayProcess } from '../support/gateway.ts';
import { startRedisServer, type RedisProcess } from '../support/redis-server.ts';
import { silentLogger } from '../support/silent-logger.ts';

const CLIENTS = 60;
let redis: RedisProcess | undefined;
let sync: SyncReference | undefined;
let shim: ShimHandle | undefined;
const nodes: (GatewayProcess | undefined)[] = [];
const clients: LegacyClient[] = [];
let dir: string | undefined;

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await shim?.close();
  await sync?.close();
  await Promise.all(nodes.map((n) => n?.stop()));
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('rolling restart behind the shim', () => {
  it('keeps every legacy client connected and served', async () => {
    redis = await startRedisServer();
    const env = { REDIS_URL: redis.url, BIFROST_REDIS_PREFIX: 'roll:' };
    for (let i = 0; i < 3; i++) nodes.push(await spawnGateway(env, ['--node-id', `roll-${i}`, '--drain-window', '3s']));
    const ports = nodes.map((n) => ({ port: new URL(n!.publicUrl).port, privatePort: new URL(n!.privateUrl).port }));
    sync = await startSyncReference({ port: 0, tokenSecret: TEST_SECRET, bifrostPrivateUrl: nodes[0]!.privateUrl, serviceToken: TEST_SERVICE_TOKEN, log: silentLogger, env: {} });
    const reg = await fetch(`${nodes[0]!.privateUrl}/v1/services/sync`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TEST_SERVICE_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ upstream: sync.url, prefixes: ['/'] }),
    });
    expect(reg.status).toBe(200);
    dir = await mkdtemp(join(tmpdir(), 'bifrost-roll-'));
    const flagsFile = join(dir, 'flags.json');
    await writeRollout(flagsFile, { percent: 100, bucketBy: 'user' });
    shim = await startShim({
      port: 0,
      adminPort: 0,
      host: '127.0.0.1',
      godserverUrl: sync.url,
      syncUrl: sync.url,
      bifrostUrls: nodes.map((n) => n!.publicUrl),
      flagsFile,
      tokenSecret: TEST_SECRET,
      adminToken: 'roll-admin',
      loadPollIntervalMs: 250,
      log: silentLogger as never,
    });
    const writer = await signAccessToken(TEST_SECRET, { userId: 'writer', teamId: 'w' });
    await fetch(`${sync.url}/collection`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-access-token': writer }, body: JSON.stringify({ id: 'roll', workspace: 'w', name: 'v0', data: {} }) });

    for (let i = 0; i < CLIENTS; i++) {
      const token = await signAccessToken(TEST_SECRET, { userId: `roll-u${i}`, teamId: 't' });
      const init = await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': token } });
      expect(init.headers.get('x-bifrost-route')).toBe('bifrost');
      const c = await connectSailsIoClient({ url: (await init.json()).syncserver_url, token });
      clients.push(c);
      expect((await c.request('get', '/collection/roll')).statusCode).toBe(200);
      // After every reconnect the app re-reads what it shows (which re-subscribes it), as real clients do.
      c.on('connect', () => void c.request('get', '/collection/roll').catch(() => undefined));
    }

    let failedWhileDown = 0;
    let failedWhileUp = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        const c = clients[Math.floor(Math.random() * clients.length)]!;
        const wasUp = c.isConnected();
        const r = await c.request('get', '/collection/roll').catch(() => undefined);
        if (r?.statusCode !== 200) {
          if (wasUp && c.isConnected()) failedWhileUp++;
          else failedWhileDown++;
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    })();

    for (let i = 0; i < 3; i++) {
      expect(await nodes[i]!.stop('SIGTERM')).toBe(0);
      nodes[i] = await spawnGateway(env, ['--node-id', `roll-${i}`, '--drain-window', '3s', '--port', ports[i]!.port, '--private-port', ports[i]!.privatePort]);
      await new Promise((r) => setTimeout(r, 1000));
    }
    stop = true;
    await traffic;

    // Every client ends connected (its own reconnect logic), served, and subscribed again.
    const deadline = Date.now() + 30_000;
    while (clients.some((c) => !c.isConnected()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(clients.filter((c) => !c.isConnected())).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 1000));
    for (const c of clients) expect((await c.request('get', '/collection/roll')).statusCode).toBe(200);
    const patch = await fetch(`${sync.url}/collection/roll`, { method: 'PATCH', headers: { 'content-type': 'application/json', 'x-access-token': writer }, body: JSON.stringify({ name: 'after-restart' }) });
    expect(patch.status).toBe(200);
    await Promise.all(clients.map((c) => c.waitFor<{ verb: string; data?: { name?: string } }>('collection', (e) => e.verb === 'updated' && e.data?.name === 'after-restart', 15_000)));
    const reconnected = clients.filter((c) => c.connectCount() > 1).length;
    console.log(`rolling restart behind the shim: ${reconnected}/${CLIENTS} clients moved, requests failed while their socket was down: ${failedWhileDown}, while up: ${failedWhileUp}`);
    expect(reconnected).toBe(CLIENTS);
    expect(failedWhileUp).toBe(0);
  }, 240_000);
});
