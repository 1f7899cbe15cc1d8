/**
 * The shim between unchanged clients and real Sails apps: the Godserver
 * intercept, per-user routing by flag percentage, stickiness, team bucketing,
 * direct mode, fallback, errors passed through, tampered route tokens, the
 * Sails SDK query quirk, and the admin API.
 *
 * Where a test only needs "some other backend" to prove where a socket went, a
 * second real Sails instance stands in for Bifrost (each test says so in its
 * name). Each backend holds a `collection` record with id "marker" whose name
 * says which backend it is, so one virtual request tells where a socket landed.
 */
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import type { SyncReference } from '../../legacy/sync-app.ts';
import { startMarkedSyncPair, type MarkedSyncPair } from '../support/sync-pair.ts';
import { connectSailsIoClient, connectSocketIo4Client, type LegacyClient } from '../support/legacy-clients.ts';
import type { ShimHandle, ShimOptions } from '../../proxy/shim.ts';
import { startTestShim } from '../support/test-shim.ts';
import { signRouteToken } from '../../proxy/route-token.ts';

const tokenSecret = 'shim-routing-test-secret';
const adminToken = 'shim-routing-admin-token';

let sync: SyncReference;
let standin: SyncReference;
let dir: string;

let pair: MarkedSyncPair | undefined;

beforeAll(async () => {
  ({ sync, standin, dir } = pair = await startMarkedSyncPair('shim-routing', tokenSecret));
});
afterAll(() => pair?.close());

async function shimWith(percent: number, opts: Partial<ShimOptions> = {}, bucketBy: 'user' | 'team' = 'user'): Promise<{ shim: ShimHandle; flagsFile: string }> {
  // A fixed salt makes the split of a given user population reproducible from run to run
  // (with a random salt, 400 users at 50% land outside ±8% about once in 700 runs).
  const setup = { dir, syncUrl: sync.url, bifrostUrls: [standin.url], tokenSecret, adminToken };
  return startTestShim(setup, { percent, bucketBy, salt: 'shim-routing-test-salt' }, opts);
}

interface InitResult {
  status: number;
  route: string | null;
  body: { user: { id: string; teamId: string }; syncserver_url: string; flags: unknown; retryAfterInSeconds: number };
}

async function init(shim: ShimHandle, userId: string, teamId: string): Promise<InitResult> {
  const token = await signAccessToken(tokenSecret, { userId, teamId });
  const res = await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': token } });
  return { status: res.status, route: res.headers.get('x-bifrost-route'), body: (await res.json()) as InitResult['body'] };
}

/** Which backend a connected client's socket reached: "sync" or "bifrost-standin". */
async function landedOn(client: LegacyClient): Promise<string> {
  const res = await client.request('get', '/collection/marker');
  expect(res.statusCode).toBe(200);
  return (res.body as { name: string }).name;
}

/** The whole client start-up: Godserver init through the shim, then the socket to the URL it gave. */
async function startClient(shim: ShimHandle, userId: string, teamId: string, kind: 'sails' | 'v4' = 'sails'): Promise<{ client: LegacyClient; init: InitResult }> {
  const i = await init(shim, userId, teamId);
  expect(i.status).toBe(200);
  const token = await signAccessToken(tokenSecret, { userId, teamId });
  const connect = kind === 'sails' ? connectSailsIoClient : connectSocketIo4Client;
  const client = await connect({ url: i.body.syncserver_url, token });
  return { client, init: i };
}

async function metricsText(shim: ShimHandle): Promise<string> {
  return (await fetch(`${shim.adminUrl}/metrics`)).text();
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  const line = text.split('\n').find((l) => l.startsWith(name + '{') && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('shim with real Sails backends', () => {
  it('sails.io.js on socket.io-client 2 loses its SDK query to ?bf_route= (real Sails refuses it); through the shim to Sync it works', async () => {
    const token = await signAccessToken(tokenSecret, { userId: 'quirk', teamId: 'q' });
    // Straight to real Sails with a query in the URL, as a proxied-mode URL would be: the SDK params are gone.
    const direct = await connectSailsIoClient({ url: `${sync.url}/?bf_route=anything`, token });
    try {
      const res = await direct.request('get', '/collection/marker').catch((err: Error) => ({ statusCode: -1, body: err.message, headers: {} }));
      expect((res.body as { name?: string } | undefined)?.name).toBeUndefined();
    } finally {
      await direct.close();
    }
    // The same client through the shim (0%: to Sync): the shim restores the params and strips bf_route.
    const { shim } = await shimWith(0);
    try {
      const { client, init: i } = await startClient(shim, 'quirk', 'q');
      expect(i.body.syncserver_url).toContain('bf_route=');
      expect(await landedOn(client)).toBe('sync');
      await client.close();
    } finally {
      await shim.close();
    }
  });

  it('0%: the Godserver answer is identical except syncserver_url, x-bifrost-route is sync, both client stacks land on Sync', async () => {
    const { shim } = await shimWith(0);
    try {
      const token = await signAccessToken(tokenSecret, { userId: 'u0', teamId: 't0' });
      const direct = (await (await fetch(`${sync.url}/godserver/init`, { headers: { 'x-access-token': token } })).json()) as InitResult['body'];
      const i = await init(shim, 'u0', 't0');
      expect(i.route).toBe('sync');
      const { syncserver_url: a, ...restDirect } = direct;
      const { syncserver_url: b, ...restShim } = i.body;
      expect(restShim).toEqual(restDirect);
      expect(a).toBe(sync.url);
      expect(new URL(b).origin).toBe(new URL(shim.url).origin);
      for (const kind of ['sails', 'v4'] as const) {
        const { client } = await startClient(shim, 'u0', 't0', kind);
        expect(await landedOn(client)).toBe('sync');
        await client.close();
      }
    } finally {
      await shim.close();
    }
  });

  it('100%: every client lands on the Bifrost side (a second Sails standing in for Bifrost)', async () => {
    const { shim } = await shimWith(100);
    try {
      for (const kind of ['sails', 'v4'] as const) {
        const { client, init: i } = await startClient(shim, `u-${kind}`, 't1', kind);
        expect(i.route).toBe('bifrost');
        expect(await landedOn(client)).toBe('bifrost-standin');
        await client.close();
      }
      const rollout = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as { percent: number; decisions: { bifrost: number } };
      expect(rollout.percent).toBe(100);
      expect(rollout.decisions.bifrost).toBeGreaterThanOrEqual(4);
    } finally {
      await shim.close();
    }
  });

  it('50% with 400 users: 50% ± 8% on each side, and each user lands on the same backend on every reconnect (Sails stand-in for Bifrost)', async () => {
    const { shim } = await shimWith(50);
    try {
      const users = Array.from({ length: 400 }, (_, i) => ({ userId: `user-${i}`, teamId: `team-${i % 37}` }));
      const first = new Map<string, string>();
      const batch = 25;
      for (let round = 0; round < 2; round++) {
        for (let k = 0; k < users.length; k += batch) {
          await Promise.all(
            users.slice(k, k + batch).map(async (u) => {
              const { client, init: i } = await startClient(shim, u.userId, u.teamId);
              const where = await landedOn(client);
              expect(where).toBe(i.route === 'bifrost' ? 'bifrost-standin' : 'sync');
              if (round === 0) first.set(u.userId, where);
              else expect(where).toBe(first.get(u.userId));
              await client.close();
            }),
          );
        }
      }
      const onBifrost = [...first.values()].filter((w) => w === 'bifrost-standin').length;
      expect(onBifrost / 400).toBeGreaterThanOrEqual(0.42);
      expect(onBifrost / 400).toBeLessThanOrEqual(0.58);
    } finally {
      await shim.close();
    }
  }, 240_000);

  it('bucket-by team: members of a team always share a backend (Sails stand-in for Bifrost)', async () => {
    const { shim } = await shimWith(50, {}, 'team');
    try {
      const teams = new Map<string, Set<string>>();
      const users = Array.from({ length: 80 }, (_, i) => ({ userId: `tm-${i}`, teamId: `squad-${i % 16}` }));
      for (let k = 0; k < users.length; k += 20) {
        await Promise.all(
          users.slice(k, k + 20).map(async (u) => {
            const { client } = await startClient(shim, u.userId, u.teamId);
            const where = await landedOn(client);
            teams.set(u.teamId, (teams.get(u.teamId) ?? new Set()).add(where));
            await client.close();
          }),
        );
      }
      for (const set of teams.values()) expect(set.size).toBe(1);
      const sides = new Set([...teams.values()].map((s) => [...s][0]));
      expect(sides.size).toBe(2); // 16 teams at 50%: both sides used
    } finally {
      await shim.close();
    }
  });

  it('direct mode: syncserver_url is the chosen backend itself (Sync untouched, or the Bifrost node; Sails stand-in)', async () => {
    const zero = await shimWith(0, { mode: 'direct' });
    try {
      const i = await init(zero.shim, 'd1', 't1');
      expect(i.route).toBe('sync');
      expect(i.body.syncserver_url).toBe(sync.url);
    } finally {
      await zero.shim.close();
    }
    const all = await shimWith(100, { mode: 'direct' });
    try {
      const i = await init(all.shim, 'd1', 't1');
      expect(i.route).toBe('bifrost');
      expect(i.body.syncserver_url).toBe(standin.url);
      const client = await connectSailsIoClient({ url: i.body.syncserver_url, token: await signAccessToken(tokenSecret, { userId: 'd1', teamId: 't1' }) });
      expect(await landedOn(client)).toBe('bifrost-standin');
      await client.close();
    } finally {
      await all.shim.close();
    }
    // No usable Bifrost node in direct mode: Sync's own URL (fallback "sync"), or 503 (fallback "error").
    const nowhere = await shimWith(100, { mode: 'direct', bifrostUrls: ['http://127.0.0.1:9'] });
    try {
      const i = await init(nowhere.shim, 'd2', 't1');
      expect(i.route).toBe('sync');
      expect(i.body.syncserver_url).toBe(sync.url);
    } finally {
      await nowhere.shim.close();
    }
    const strict = await shimWith(100, { mode: 'direct', bifrostUrls: ['http://127.0.0.1:9'], fallback: 'error' });
    try {
      const token = await signAccessToken(tokenSecret, { userId: 'd3', teamId: 't1' });
      const res = await fetch(`${strict.shim.url}/godserver/init`, { headers: { 'x-access-token': token } });
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ error: { code: 'unavailable', message: 'no Bifrost node available' } });
    } finally {
      await strict.shim.close();
    }
  });

  it('falls back to Sync when no Bifrost node is reachable, counted; with fallback "error" the upgrade gets 503', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadUrl = `http://127.0.0.1:${(dead.address() as net.AddressInfo).port}`;
    await new Promise<void>((r) => dead.close(() => r()));
    const { shim } = await shimWith(100, { bifrostUrls: [deadUrl] });
    try {
      const { client } = await startClient(shim, 'fb1', 't1');
      expect(await landedOn(client)).toBe('sync');
      await client.close();
      expect(metricValue(await metricsText(shim), 'bifrost_shim_fallbacks_total', { action: 'sync' })).toBeGreaterThanOrEqual(1);
    } finally {
      await shim.close();
    }
    const strict = await shimWith(100, { bifrostUrls: [deadUrl], fallback: 'error' });
    try {
      const i = await init(strict.shim, 'fb2', 't1');
      const u = new URL(i.body.syncserver_url);
      const res = await new Promise<string>((resolve, reject) => {
        const s = net.connect(Number(u.port), u.hostname, () => {
          s.write(`GET /socket.io/?EIO=4&transport=websocket&${u.searchParams} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
        });
        let data = '';
        s.on('data', (d) => (data += d));
        s.on('close', () => resolve(data));
        s.on('error', reject);
      });
      expect(res.split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
      expect(metricValue(await metricsText(strict.shim), 'bifrost_shim_upgrades_total', { backend: 'bifrost', outcome: 'unavailable' })).toBe(1);
      // The same outcome in the admin API's recent window: one failed Bifrost upgrade, after one decision at init and one at the upgrade.
      const recent = ((await (await fetch(`${strict.shim.adminUrl}/api/rollout`)).json()) as { recent: unknown }).recent;
      expect(recent).toEqual({ windowSeconds: 300, decisions: { sync: 0, bifrost: 2 }, upgrades: { sync: { ok: 0, failed: 0 }, bifrost: { ok: 0, failed: 1 } } });
    } finally {
      await strict.shim.close();
    }
  });

  it('restoreSdkParams "sync": a socket decided for Bifrost whose node refuses reaches Sync with the SDK params back (sails.io.js works there)', async () => {
    // A node that looks idle at the one /load poll, then goes away: its upgrade is refused.
    const ghost = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ node: 'gw-ghost', loadFactor: 0, draining: false }));
    });
    await new Promise<void>((r) => ghost.listen(0, '127.0.0.1', r));
    const ghostUrl = `http://127.0.0.1:${(ghost.address() as net.AddressInfo).port}`;
    const { shim } = await shimWith(100, { bifrostUrls: [ghostUrl], fallback: 'sync', restoreSdkParams: 'sync', loadPollIntervalMs: 600_000 });
    await new Promise<void>((r) => ghost.close(() => r()));
    try {
      // sails.io.js on socket.io-client 2 has lost its SDK query to ?bf_route=: real Sails accepts
      // the socket only if the shim put the params back for the backend that accepted it (Sync).
      const { client, init: i } = await startClient(shim, 'rs1', 't1');
      expect(i.route).toBe('bifrost');
      expect(await landedOn(client)).toBe('sync');
      await client.close();
      const text = await metricsText(shim);
      expect(metricValue(text, 'bifrost_shim_upgrades_total', { backend: 'bifrost', outcome: 'refused' })).toBe(1);
      expect(metricValue(text, 'bifrost_shim_fallbacks_total', { reason: 'all_refused', action: 'sync' })).toBe(1);
      expect(metricValue(text, 'bifrost_shim_upgrades_total', { backend: 'sync', outcome: 'ok' })).toBe(1);
    } finally {
      await shim.close();
    }
  });

  it('passes Godserver errors through untouched (401 body and status), and answers 502 when the Godserver is down', async () => {
    const { shim } = await shimWith(100);
    try {
      const direct = await fetch(`${sync.url}/godserver/init`, { headers: { 'x-access-token': 'not-a-token' } });
      const viaShim = await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': 'not-a-token' } });
      expect(viaShim.status).toBe(401);
      expect(viaShim.headers.get('x-bifrost-route')).toBeNull();
      expect(await viaShim.text()).toBe(await direct.text());
      const missing = await fetch(`${shim.url}/godserver/init`);
      expect(missing.status).toBe(401);
    } finally {
      await shim.close();
    }
    const down = await shimWith(100, { godserverUrl: 'http://127.0.0.1:9' });
    try {
      const res = await fetch(`${down.shim.url}/godserver/init`, { headers: { 'x-access-token': 'x' } });
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('badGateway');
    } finally {
      await down.shim.close();
    }
  });

  it('a missing or tampered route token goes to Sync and is counted; an expired but genuine one still routes by its user, counted (Sails stand-in for Bifrost at 100%)', async () => {
    const routeSecret = 'shim-routing-route-secret';
    const { shim } = await shimWith(100, { routeSecret });
    try {
      const token = await signAccessToken(tokenSecret, { userId: 'evil', teamId: 't' });
      const i = await init(shim, 'evil', 't');
      const good = new URL(i.body.syncserver_url);
      const bf = good.searchParams.get('bf_route')!;
      const parts = bf.split('.');
      const tampered = [parts[0], Buffer.from('someone-else').toString('base64url'), ...parts.slice(2)].join('.');
      const expired = signRouteToken(routeSecret, { userId: 'evil', teamId: 't' }, 60, Math.floor(Date.now() / 1000) - 3600);
      const foreign = signRouteToken('another-secret', { userId: 'evil', teamId: 't' });
      for (const url of [`${shim.url}/?bf_route=${tampered}`, `${shim.url}/?bf_route=${foreign}`, `${shim.url}/?x=1`]) {
        const c = await connectSailsIoClient({ url, token });
        expect(await landedOn(c)).toBe('sync');
        await c.close();
      }
      // Expired an hour ago, correctly signed: the client ran longer than the TTL; it is not stranded on Sync.
      const old = await connectSailsIoClient({ url: `${shim.url}/?bf_route=${expired}`, token });
      expect(await landedOn(old)).toBe('bifrost-standin');
      await old.close();
      const text = await metricsText(shim);
      expect(metricValue(text, 'bifrost_shim_route_token_rejections_total', { reason: 'signature' })).toBe(2);
      expect(metricValue(text, 'bifrost_shim_route_token_rejections_total', { reason: 'expired' })).toBe(0);
      expect(metricValue(text, 'bifrost_shim_route_token_rejections_total', { reason: 'missing' })).toBe(1);
      expect(Number(/^bifrost_shim_route_token_expired_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
      // the genuine token still routes to the Bifrost side
      const ok = await connectSailsIoClient({ url: good.toString(), token });
      expect(await landedOn(ok)).toBe('bifrost-standin');
      await ok.close();
    } finally {
      await shim.close();
    }
  });

  it('every other path passes through to Sync unchanged', async () => {
    const { shim } = await shimWith(100);
    try {
      const token = await signAccessToken(tokenSecret, { userId: 'p', teamId: 't' });
      const a = await fetch(`${sync.url}/collection/marker`, { headers: { 'x-access-token': token } });
      const b = await fetch(`${shim.url}/collection/marker`, { headers: { 'x-access-token': token } });
      expect(b.status).toBe(a.status);
      expect(await b.json()).toEqual(await a.json());
      const c = await fetch(`${shim.url}/collection/nope`, { headers: { 'x-access-token': token } });
      expect(c.status).toBe(404);
      const d = await fetch(`${shim.url}/collection/marker`);
      expect(d.status).toBe(403);
    } finally {
      await shim.close();
    }
  });

  it('admin API: rollout read, authenticated writes, precise 400s, one error format, metrics names', async () => {
    const { shim, flagsFile } = await shimWith(0);
    try {
      const put = (body: unknown, auth?: string) =>
        fetch(`${shim.adminUrl}/api/rollout`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
          body: JSON.stringify(body),
        });
      const noAuth = await put({ percent: 10 });
      expect(noAuth.status).toBe(401);
      expect(((await noAuth.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
      expect((await put({ percent: 10 }, 'wrong')).status).toBe(401);
      const tooBig = await put({ percent: 150 }, adminToken);
      expect(tooBig.status).toBe(400);
      expect(((await tooBig.json()) as { error: { message: string } }).error.message).toMatch(/percent must be <= 100/);
      const badBucket = await put({ percent: 10, bucketBy: 'org' }, adminToken);
      expect(badBucket.status).toBe(400);
      expect(((await badBucket.json()) as { error: { message: string } }).error.message).toMatch(/bucketBy must be equal to one of the allowed values/);
      const str = await put({ percent: '10' }, adminToken);
      expect(str.status).toBe(400);
      const tooFine = await put({ percent: 10.00001 }, adminToken);
      expect(tooFine.status).toBe(400);
      expect(((await tooFine.json()) as { error: { message: string } }).error.message).toMatch(/at most 3 decimals/);
      const ok = await put({ percent: 100, bucketBy: 'team' }, adminToken);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ percent: 100, bucketBy: 'team', source: 'file', flagsFile });
      const i = await init(shim, 'adm', 't');
      expect(i.route).toBe('bifrost');
      const notFound = await fetch(`${shim.adminUrl}/nope`);
      expect(notFound.status).toBe(404);
      expect(await notFound.json()).toEqual({ error: { code: 'notFound', message: 'no route GET /nope' } });
      expect((await fetch(`${shim.adminUrl}/api/drain`, { method: 'POST' })).status).toBe(401);
      const drain = await fetch(`${shim.adminUrl}/api/drain`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: '{}' });
      expect(drain.status).toBe(202);
      expect(await drain.json()).toMatchObject({ queued: 0, rate: 100, scope: 'changed' });
      const text = await metricsText(shim);
      for (const name of ['bifrost_shim_decisions_total', 'bifrost_shim_upgrades_total', 'bifrost_shim_live_connections', 'bifrost_shim_rebalanced_connections_total', 'bifrost_shim_fallbacks_total', 'bifrost_shim_evaluation_errors_total']) {
        expect(text).toContain(`# TYPE ${name}`);
      }
      expect(metricValue(text, 'bifrost_shim_decisions_total', { route: 'bifrost', source: 'godserver' })).toBe(1);
      // garbage in the flags file: the last good flags stay, the error is counted
      await writeFile(flagsFile, 'garbage');
      const deadline = Date.now() + 2000;
      let reloadErrors = 0;
      while (Date.now() < deadline && reloadErrors === 0) {
        reloadErrors = ((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as { flagReloads: { errors: number } }).flagReloads.errors;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(reloadErrors).toBe(1);
      expect((await init(shim, 'adm', 't')).route).toBe('bifrost');
      expect(metricValue(await metricsText(shim), 'bifrost_shim_flag_reloads_total', { outcome: 'error' })).toBe(1);
    } finally {
      await shim.close();
    }
  });
});
