/**
 * Sync stays the source of truth while users are split: a client on Sync and
 * a teammate on Bifrost see each other's changes live, in both directions,
 * with the Bifrost client on a different node from the one Sync publishes to.
 * Unchanged client libraries on both sides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../../gateway/gateway.ts';
import { signAccessToken } from '../../gateway/token.ts';
import { startSyncReference, type SyncReference } from '../../legacy/sync-app.ts';
import { connectSailsIoClient, connectSocketIo4Client, type LegacyClient } from '../support/legacy-clients.ts';
import { IN_PROCESS_LOAD } from '../support/gateway.ts';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../support/redis.ts';
import { silentLogger } from '../support/silent-logger.ts';

const secret = 'cross-system-secret';
const serviceToken = 'cross-system-service';
const prefix = uniquePrefix('cross');
let nodeA: RunningGateway;
let nodeB: RunningGateway;
let sync: SyncReference;
const clients: LegacyClient[] = [];

interface Ev {
  verb: string;
  id: string;
  data?: Record<string, unknown>;
}

beforeAll(async () => {
  const node = (id: string) =>
    startGateway({ port: 0, privatePort: 0, host: '127.0.0.1', tokenSecret: secret, serviceToken, redisUrl: testRedisUrl(), redisPrefix: prefix, nodeId: id, logLevel: 'silent', load: IN_PROCESS_LOAD });
  nodeA = await node('cross-a');
  nodeB = await node('cross-b');
  // Sync's bridge publishes to node A; the Bifrost client sits on node B.
  sync = await startSyncReference({ port: 0, tokenSecret: secret, bifrostPrivateUrl: nodeA.privateUrl, serviceToken, log: silentLogger, env: {} });
  const r = await fetch(`${nodeB.privateUrl}/v1/services/sync`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upstream: sync.url, prefixes: ['/'] }),
  });
  expect(r.status).toBe(200);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await sync?.close();
  await nodeA?.close();
  await nodeB?.close();
  await deletePrefix(testRedisUrl(), prefix);
});

describe('cross-system live updates', () => {
  for (const [label, connectY] of [
    ['sails.io.js on Sync, socket.io-client 4 on Bifrost', connectSocketIo4Client],
    ['sails.io.js on Sync, sails.io.js on Bifrost', connectSailsIoClient],
  ] as const) {
    it(`${label}: each sees the other's changes`, async () => {
      const id = `cross-${Math.random().toString(36).slice(2, 8)}`;
      const x = await connectSailsIoClient({ url: sync.url, token: await signAccessToken(secret, { userId: 'x', teamId: 't' }) });
      const y = await connectY({ url: nodeB.publicUrl, token: await signAccessToken(secret, { userId: 'y', teamId: 't' }) });
      clients.push(x, y);
      expect((await x.request('post', '/collection', { id, workspace: 'w', name: 'start', data: {} })).statusCode).toBe(200);
      expect((await x.request('get', `/collection/${id}`)).statusCode).toBe(200);
      expect((await y.request('get', `/collection/${id}`)).statusCode).toBe(200);

      // X (on Sync) updates: Y (on Bifrost node B) receives it through the bridge, node A and Redis.
      expect((await x.request('patch', `/collection/${id}`, { name: 'from-sync' })).statusCode).toBe(200);
      const atY = await y.waitFor<Ev>('collection', (e) => e.id === id && e.verb === 'updated' && e.data?.name === 'from-sync', 10_000);
      expect(atY.verb).toBe('updated');

      // Y updates through Bifrost (-> service sync -> Sync): X receives it from Sync itself.
      expect((await y.request('patch', `/collection/${id}`, { name: 'from-bifrost' })).statusCode).toBe(200);
      const atX = await x.waitFor<Ev>('collection', (e) => e.id === id && e.verb === 'updated' && e.data?.name === 'from-bifrost', 10_000);
      expect(atX.verb).toBe('updated');

      // Destroy from Sync reaches Bifrost too.
      expect((await x.request('delete', `/collection/${id}`)).statusCode).toBe(200);
      await y.waitFor<Ev>('collection', (e) => e.id === id && e.verb === 'destroyed', 10_000);
      expect(y.received<Ev>('collection').filter((e) => e.id === id && e.verb === 'updated').map((e) => e.data?.name)).toContain('from-sync');
    });
  }
});
