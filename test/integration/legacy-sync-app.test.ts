/**
 * The reference Sync app itself (beyond the socket contract): Godserver init,
 * HTTP blueprints and auth, several instances in one process, Sails' refusal
 * of handshakes without the SDK version, and clean start/stop.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { io as ioV4 } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import { startSyncReference, type SyncReference, type SyncReferenceOptions } from '../../legacy/sync-app.ts';
import { connectSailsIoClient, connectSocketIo4Client, type LegacyClient } from '../support/legacy-clients.ts';
import { silentLogger } from '../support/silent-logger.ts';

const tokenSecret = 'legacy-sync-app-test-secret';
const token = (ttl: string | number = '1h', secret = tokenSecret) => signAccessToken(secret, { userId: 'u1', teamId: 't1' }, ttl);

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function sync(opts: SyncReferenceOptions = {}): Promise<SyncReference> {
  const s = await startSyncReference({ port: 0, tokenSecret, log: silentLogger, env: {}, ...opts });
  cleanup.push(() => s.close());
  return s;
}

async function client(connect: typeof connectSailsIoClient, opts: { url: string; token?: string }): Promise<LegacyClient> {
  const c = await connect({ token: await token(), ...opts });
  cleanup.push(() => c.close());
  return c;
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, body: (await res.json()) as unknown };
}

describe('Sync reference app', () => {
  it('answers GET /godserver/init with the user, its own URL, the flags and the retry delay', async () => {
    const s = await sync();
    expect(await get(`${s.url}/godserver/init`, { 'x-access-token': await token() })).toEqual({
      status: 200,
      body: {
        user: { id: 'u1', teamId: 't1' },
        syncserver_url: s.url,
        flags: { sync: true, websocket: true, notification: true },
        retryAfterInSeconds: 300,
      },
    });
    expect(s.url).toBe(`http://127.0.0.1:${s.port}`);
  });

  it('announces the configured public URL as syncserver_url', async () => {
    const s = await sync({ publicUrl: 'https://sync.example.com' });
    const res = await get(`${s.url.replace('https://sync.example.com', `http://127.0.0.1:${s.port}`)}/godserver/init`, { 'x-access-token': await token() });
    expect(s.url).toBe('https://sync.example.com');
    expect((res.body as { syncserver_url: string }).syncserver_url).toBe('https://sync.example.com');
  });

  it('answers 401 to /godserver/init without a valid token', async () => {
    const s = await sync();
    const refused = { status: 401, body: { error: { name: 'authenticationError', message: expect.any(String) } } };
    expect(await get(`${s.url}/godserver/init`)).toEqual(refused);
    expect(await get(`${s.url}/godserver/init`, { 'x-access-token': 'garbage' })).toEqual(refused);
    expect(await get(`${s.url}/godserver/init`, { 'x-access-token': await token(-10) })).toEqual(refused);
    expect(await get(`${s.url}/godserver/init`, { 'x-access-token': await token('1h', 'another-secret') })).toEqual(refused);
  });

  it('serves the blueprints over HTTP with the same auth (what an upstream proxy uses), 100 KiB bodies included', async () => {
    const s = await sync();
    const headers = { 'content-type': 'application/json', 'x-access-token': await token() };
    const data = { blob: 'x'.repeat(100 * 1024) };
    const created = await fetch(`${s.url}/collection`, { method: 'POST', headers, body: JSON.stringify({ id: 'h1', workspace: 'w', name: 'n', data }) });
    expect(created.status).toBe(200);
    const read = await get(`${s.url}/collection/h1`, { 'x-access-token': await token() });
    expect(read.status).toBe(200);
    expect((read.body as { data: unknown }).data).toEqual(data);
    expect(await get(`${s.url}/collection/h1`)).toEqual({ status: 403, body: { error: { name: 'authenticationError', message: 'missing access token' } } });
  });

  it('updates a record in place: reads and updates during updates never find it missing, and no update is lost', async () => {
    // sails-disk turns every blueprint update (which always sets the primary key) into
    // find + destroy + create: a read in between answered 404 for a record that exists.
    const s = await sync();
    const headers = { 'content-type': 'application/json', 'x-access-token': await token() };
    const url = `${s.url}/collection/busy`;
    expect((await fetch(`${s.url}/collection`, { method: 'POST', headers, body: JSON.stringify({ id: 'busy', workspace: 'w', name: 'n0', data: {} }) })).status).toBe(200);
    const failed: string[] = [];
    let writing = true;
    const readers = Array.from({ length: 4 }, async () => {
      while (writing) {
        const res = await fetch(url, { headers });
        if (res.status !== 200) failed.push(`GET ${res.status}`);
        await res.arrayBuffer();
      }
    });
    // Two writers at once, each on its own field: both must stick.
    const writer = (field: 'name' | 'workspace') =>
      (async () => {
        for (let i = 1; i <= 20; i++) {
          const res = await fetch(url, { method: 'PATCH', headers, body: JSON.stringify({ [field]: `${field}-${i}` }) });
          if (res.status !== 200) failed.push(`PATCH ${field} ${res.status}`);
          await res.arrayBuffer();
        }
      })();
    await Promise.all([writer('name'), writer('workspace')]);
    writing = false;
    await Promise.all(readers);
    expect(failed).toEqual([]);
    expect((await get(url, { 'x-access-token': await token() })).body).toMatchObject({ id: 'busy', name: 'name-20', workspace: 'workspace-20' });
  });

  it('runs two independent instances in one process', async () => {
    const a = await sync();
    const b = await sync();
    expect(a.port).not.toBe(b.port);
    const ca = await client(connectSocketIo4Client, { url: a.url });
    const cb = await client(connectSailsIoClient, { url: b.url });
    expect((await ca.request('post', '/collection', { id: 'same', name: 'in-a' })).statusCode).toBe(200);
    expect((await cb.request('get', '/collection/same')).statusCode).toBe(404);
    expect((await cb.request('post', '/collection', { id: 'same', name: 'in-b' })).statusCode).toBe(200);
    expect((await ca.request('get', '/collection/same')).body).toMatchObject({ name: 'in-a' });
    expect((await cb.request('get', '/collection/same')).body).toMatchObject({ name: 'in-b' });
    // Sails exposes no globals, so the two apps cannot see each other.
    expect((globalThis as Record<string, unknown>).sails).toBeUndefined();
    await a.close();
    expect((await cb.request('get', '/collection/same')).statusCode).toBe(200);
  });

  it('accepts EIO 3 clients and keeps Sails refusing virtual requests whose handshake lacks __sails_io_sdk_version', async () => {
    const s = await sync();
    expect(s.sails.io?.engine.opts.allowEIO3).toBe(true);
    const t = await token();

    // A plain socket.io 4 client that does not send the SDK parameters is refused, as by real Sync.
    const bare = ioV4(s.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    cleanup.push(async () => void bare.disconnect());
    await new Promise<void>((resolve, reject) => {
      bare.once('connect', () => resolve());
      bare.once('connect_error', reject);
    });
    const refusal = (await bare.timeout(5_000).emitWithAck('get', { method: 'get', url: '/collection', headers: { 'x-access-token': t }, data: {} })) as Record<string, unknown>;
    expect(refusal).toMatchObject({ code: 'SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ', status: 400, details: expect.stringContaining('(0.9.0)') });
    expect(refusal.statusCode).toBeUndefined();

    // sails.io.js on socket.io-client 2: a query string in the URL replaces the SDK's own
    // handshake query, so Sails refuses its requests; the SDK shows that as an empty 200.
    const quirky = await client(connectSailsIoClient, { url: `${s.url}/?bf_route=abc` });
    expect(await quirky.request('get', '/collection')).toEqual({ statusCode: 200, body: undefined, headers: {} });
    const plain = await client(connectSailsIoClient, { url: s.url });
    expect(await plain.request('get', '/collection')).toMatchObject({ statusCode: 200, body: [] });
  });

  it('leaves process signals to its embedder and frees its port on close', async () => {
    const before = { int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') };
    const s = await startSyncReference({ port: 0, tokenSecret, log: silentLogger, env: {} });
    expect({ int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') }).toEqual(before);
    const port = s.port;
    await s.close();
    await s.close(); // idempotent
    const again = await sync({ port });
    expect(again.port).toBe(port);
  });

  it('fails to start with a clear error when its port is taken, leaving nothing behind', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    cleanup.push(() => new Promise((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as AddressInfo).port;
    const before = process.listenerCount('SIGINT');
    await expect(startSyncReference({ port, tokenSecret, log: silentLogger, env: {} })).rejects.toThrow(/failed to start/);
    expect(process.listenerCount('SIGINT')).toBe(before);
  });

  it('reads its port, secret and bridge from the environment when not given', async () => {
    const env = { BIFROST_TOKEN_SECRET: 'env-secret', BIFROST_PRIVATE_URL: 'http://127.0.0.1:9', BIFROST_SERVICE_TOKEN: 'svc', SYNC_PORT: '0' };
    const s = await startSyncReference({ log: silentLogger, env, bridgeFlushTimeoutMs: 0 });
    cleanup.push(() => s.close());
    expect(s.bridgeStats()).toMatchObject({ enabled: true, target: 'http://127.0.0.1:9/v1/publish' });
    const ok = await get(`${s.url}/godserver/init`, { 'x-access-token': await token('1h', 'env-secret') });
    expect(ok.status).toBe(200);
    expect((await get(`${s.url}/godserver/init`, { 'x-access-token': await token() })).status).toBe(401);
  });
});
