/**
 * Hostile input against the shim and its admin API: tampered, truncated,
 * foreign and oversized `bf_route` tokens are never trusted (the request goes
 * to Sync and is counted; an expired but genuine token still routes by its
 * claims, see test/integration/shim-routing.test.ts), garbage Godserver tokens pass through as Sync's own
 * 401, and admin writes without the token, or with bad bodies, are refused.
 * A well-behaved client routed to Bifrost keeps working throughout.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import { startSyncReference, type SyncReference } from '../../legacy/sync-app.ts';
import { startShim, type ShimHandle } from '../../proxy/shim.ts';
import { signRouteToken } from '../../proxy/route-token.ts';
import { writeRollout } from '../../proxy/flags-file.ts';
import { connectSailsIoClient, type LegacyClient } from '../support/legacy-clients.ts';
import { startTestGateway, TEST_SECRET, TEST_SERVICE_TOKEN } from '../support/gateway.ts';
import type { RunningGateway } from '../../gateway/gateway.ts';
import { silentLogger } from '../support/silent-logger.ts';

const ROUTE_SECRET = 'hostile-route-secret';
const ADMIN = 'hostile-admin-token';
let sync: SyncReference;
let gw: RunningGateway;
let shim: ShimHandle;
let dir: string;
let good: LegacyClient;
const counts: Record<string, number> = {};

async function metric(name: string, label: string): Promise<number> {
  const text = await (await fetch(shim.adminUrl + '/metrics')).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name + '{') && line.includes(label)) sum += Number(line.split(' ').at(-1));
  return sum;
}

beforeAll(async () => {
  gw = await startTestGateway();
  sync = await startSyncReference({ port: 0, tokenSecret: TEST_SECRET, bifrostPrivateUrl: gw.privateUrl, serviceToken: TEST_SERVICE_TOKEN, log: silentLogger, env: {} });
  await fetch(`${gw.privateUrl}/v1/services/sync`, { method: 'PUT', headers: { authorization: `Bearer ${TEST_SERVICE_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ upstream: sync.url, prefixes: ['/'] }) });
  dir = await mkdtemp(join(tmpdir(), 'bifrost-hostile-shim-'));
  const flagsFile = join(dir, 'flags.json');
  await writeRollout(flagsFile, { percent: 100, bucketBy: 'user' });
  shim = await startShim({ port: 0, adminPort: 0, host: '127.0.0.1', godserverUrl: sync.url, syncUrl: sync.url, bifrostUrls: [gw.publicUrl], flagsFile, tokenSecret: TEST_SECRET, routeSecret: ROUTE_SECRET, adminToken: ADMIN, log: silentLogger as never });
  const token = await signAccessToken(TEST_SECRET, { userId: 'good', teamId: 't' });
  const init = await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': token } });
  good = await connectSailsIoClient({ url: (await init.json()).syncserver_url, token });
}, 60_000);
afterAll(async () => {
  await good?.close();
  await shim?.close();
  await sync?.close();
  await gw?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  console.log(`hostile shim input: ${JSON.stringify(counts)}`);
});

describe('hostile input at the shim', () => {
  it('never trusts a forged bf_route: each one goes to Sync and is counted', async () => {
    const valid = signRouteToken(ROUTE_SECRET, { userId: 'victim', teamId: 't' }, 3600);
    const parts = valid.split('.');
    const forged = [
      // Bit-flipped signatures: one of the last full characters changed. (Not the very last one: it carries
      // only 4 bits, so replacing it can leave the signature as it was, and 'A' is its value 1 time in 16.)
      ...Array.from({ length: 50 }, (_, i) => {
        const at = valid.length - 2 - (i % 5);
        return valid.slice(0, at) + (valid[at] === 'A' ? 'B' : 'A') + valid.slice(at + 1);
      }),
      ...Array.from({ length: 50 }, (_, i) => [parts[0], Buffer.from(`admin${i}`).toString('base64url'), parts[2], parts[3], parts[4]].join('.')), // swapped user
      ...Array.from({ length: 20 }, () => signRouteToken('some-other-secret', { userId: 'victim', teamId: 't' }, 3600)), // wrong key
      // expired with a wrong signature: the expiry does not make a forged token any better
      ...Array.from({ length: 20 }, () => signRouteToken('some-other-secret', { userId: 'victim', teamId: 't' }, 1, Math.floor(Date.now() / 1000) - 100)),
      ...Array.from({ length: 20 }, (_, i) => 'x'.repeat(10 + i * 300)), // garbage and oversized
      ...Array.from({ length: 20 }, (_, i) => parts.slice(0, i % 5).join('.')), // truncated
    ];
    expect(forged).not.toContain(valid);
    const before = await metric('bifrost_shim_route_token_rejections_total', '');
    for (const t of forged) {
      const r = await fetch(`${shim.url}/socket.io/?EIO=4&transport=polling&bf_route=${encodeURIComponent(t)}&__sails_io_sdk_version=1.2.1`);
      await r.arrayBuffer();
      expect(r.status).toBeLessThan(500);
    }
    counts['shim:forged-bf_route'] = forged.length;
    const after = await metric('bifrost_shim_route_token_rejections_total', '');
    expect(after - before).toBe(forged.length);
    // The forged requests were answered by Sync's engine, not Bifrost's: the gateway saw no new legacy connection.
    expect(gw.ctx.registry.count('legacy')).toBe(1);
  });

  it('passes garbage Godserver tokens through as Sync\'s 401', async () => {
    for (const t of ['', 'garbage', 'a.b.c', 'x'.repeat(6000), 'Bearer\r\nX: y'.replace(/[\r\n]/g, '')]) {
      const r = await fetch(`${shim.url}/godserver/init`, { headers: t ? { 'x-access-token': t } : {} });
      expect(r.status).toBe(401);
      counts['shim:bad-godserver-token'] = (counts['shim:bad-godserver-token'] ?? 0) + 1;
    }
  });

  it('refuses admin writes without the token or with bad bodies', async () => {
    const put = (body: string, auth?: string) =>
      fetch(`${shim.adminUrl}/api/rollout`, { method: 'PUT', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body }).then((r) => r.status);
    for (let i = 0; i < 20; i++) {
      expect(await put('{"percent":50}')).toBe(401);
      expect(await put('{"percent":50}', 'Bearer wrong')).toBe(401);
      expect(await put('{"percent":50}', `Basic ${Buffer.from('a:b').toString('base64')}`)).toBe(401);
      expect(await fetch(`${shim.adminUrl}/api/drain`, { method: 'POST' }).then((r) => r.status)).toBe(401);
      expect(await put('{"percent":500}', `Bearer ${ADMIN}`)).toBe(400);
      expect(await put('{"percent":"x"}', `Bearer ${ADMIN}`)).toBe(400);
      expect(await put('{nope', `Bearer ${ADMIN}`)).toBe(400);
      counts['admin:refused'] = (counts['admin:refused'] ?? 0) + 7;
    }
    expect((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()).percent).toBe(100);
  });

  it('kept serving the well-behaved client on Bifrost', async () => {
    expect(good.isConnected()).toBe(true);
    expect((await good.request('post', '/collection', { id: 'hostile-ok', workspace: 'w', name: 'n', data: {} })).statusCode).toBe(200);
    expect(gw.ctx.registry.count('legacy')).toBe(1);
  });
});
