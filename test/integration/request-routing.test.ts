/**
 * Client requests routed through the service table to real HTTP upstreams:
 * lookups, header stripping, path escapes, subscribe headers, timeouts and
 * unreachable services, over the native protocol and /v1/proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../gateway/gateway.ts';
import { NativeClient } from '../support/native-client.ts';
import { privateCall, startTestGateway, token } from '../support/gateway.ts';
import { json, startUpstream } from '../support/upstream.ts';
import { freePort } from '../support/redis-server.ts';

let gw: RunningGateway;
let up: Awaited<ReturnType<typeof startUpstream>>;
let client: NativeClient;

beforeAll(async () => {
  gw = await startTestGateway({ upstreamTimeoutMs: 500 });
  up = await startUpstream((req, res) => {
    if (req.url.startsWith('/notes/slow')) return void setTimeout(() => json(res, 200, { late: true }), 2000);
    if (req.url.startsWith('/notes/c1')) return json(res, 200, { id: 'c1' }, { 'x-bifrost-subscribe': 'collection:c1, collection:c2', 'set-cookie': 'a=b', 'x-internal': 'secret' });
    if (req.url.startsWith('/notes/leave')) return json(res, 200, {}, { 'x-bifrost-unsubscribe': 'collection:c2' });
    if (req.url.startsWith('/notes/missing')) return json(res, 404, { error: 'not found' });
    json(res, 200, { method: req.method, url: req.url, body: req.body ? JSON.parse(req.body) : null });
  });
  for (const [name, prefixes] of [['notes', ['/notes']], ['sync', ['/']], ['admin', ['/admin']]] as const) {
    const r = await privateCall(gw.privateUrl, 'PUT', `/v1/services/${name}`, { upstream: up.url, prefixes });
    expect(r.status).toBe(200);
  }
  client = await NativeClient.connect(gw.publicUrl, await token('router-user', 'rt'));
});
afterAll(async () => {
  client?.close();
  await gw?.close();
  await up?.close();
});

describe('service table', () => {
  it('stores, lists, reads and deletes services with schema-checked bodies', async () => {
    expect((await privateCall(gw.privateUrl, 'GET', '/v1/services')).body.services.map((s: { name: string }) => s.name)).toEqual(['admin', 'notes', 'sync']);
    expect((await privateCall(gw.privateUrl, 'GET', '/v1/services/notes')).body).toMatchObject({ name: 'notes', upstream: up.url, prefixes: ['/notes'] });
    expect(await privateCall(gw.privateUrl, 'GET', '/v1/services/nope')).toMatchObject({ status: 404, body: { error: { code: 'invalidServiceError' } } });
    expect(await privateCall(gw.privateUrl, 'PUT', '/v1/services/bad', { upstream: 'ftp://x', prefixes: ['/x'] })).toMatchObject({ status: 400, body: { error: { code: 'badRequest' } } });
    expect(await privateCall(gw.privateUrl, 'PUT', '/v1/services/bad', { upstream: up.url, prefixes: [] })).toMatchObject({ status: 400 });
    expect(await privateCall(gw.privateUrl, 'PUT', '/v1/services/bad', { upstream: up.url, prefixes: ['/a/../b'] })).toMatchObject({ status: 400 });
    expect(await privateCall(gw.privateUrl, 'PUT', '/v1/services/tmp', { upstream: up.url, prefixes: ['/tmp'] })).toMatchObject({ status: 200 });
    expect(await privateCall(gw.privateUrl, 'DELETE', '/v1/services/tmp')).toMatchObject({ status: 200, body: { deleted: 'tmp' } });
    expect(await privateCall(gw.privateUrl, 'DELETE', '/v1/services/tmp')).toMatchObject({ status: 404 });
  });

  it('refuses private API calls without the service token', async () => {
    const r = await fetch(gw.privateUrl + '/v1/services');
    expect(r.status).toBe(401);
    expect(await r.json()).toMatchObject({ error: { code: 'unauthorized' } });
    const wrong = await fetch(gw.privateUrl + '/v1/publish', { method: 'POST', headers: { authorization: 'Bearer nope', 'content-type': 'application/json' }, body: '{}' });
    expect(wrong.status).toBe(401);
  });
});

describe('request frames', () => {
  it('forwards method, path, query, body and the caller token; strips x-bifrost-* client headers', async () => {
    const n = up.requests.length;
    const r = await client.call({
      op: 'request',
      service: 'notes',
      method: 'POST',
      path: '/notes/new',
      query: { a: '1' },
      body: { name: 'n' },
      headers: { 'x-bifrost-user': 'forged', 'x-bifrost-subscribe': 'user:victim', 'x-trace': 'keep' },
    });
    expect(r).toMatchObject({ op: 'response', status: 200, body: { method: 'POST', url: '/notes/new?a=1', body: { name: 'n' } } });
    const seen = up.requests[n]!;
    expect(seen.headers['x-access-token']).toBeTruthy();
    expect(seen.headers['x-bifrost-user']).toBe('router-user');
    expect(seen.headers['x-bifrost-subscribe']).toBeUndefined();
    expect(seen.headers['x-trace']).toBe('keep');
  });

  it('relays the upstream status and only safe headers', async () => {
    const r = await client.call({ op: 'request', service: 'notes', method: 'GET', path: '/notes/missing' });
    expect(r).toMatchObject({ op: 'response', status: 404, body: { error: 'not found' } });
    const ok = await client.call({ op: 'request', service: 'notes', method: 'GET', path: '/notes/c1' });
    expect(ok.headers).toEqual({ 'content-type': 'application/json' });
  });

  it('applies x-bifrost-subscribe and x-bifrost-unsubscribe to the requesting socket', async () => {
    await client.call({ op: 'request', service: 'notes', method: 'GET', path: '/notes/c1' });
    await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'collection:c2', event: 'collection', data: { id: 'c2' } });
    expect((await client.waitFor((f) => f.op === 'event' && f.topic === 'collection:c2')).data).toEqual({ id: 'c2' });
    await client.call({ op: 'request', service: 'notes', method: 'GET', path: '/notes/leave' });
    const before = client.events.length;
    await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'collection:c2', event: 'collection', data: { id: 'c2' } });
    await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'collection:c1', event: 'collection', data: { id: 'c1' } });
    await client.waitFor((f) => f.op === 'event' && f.topic === 'collection:c1');
    expect(client.events.slice(before).map((e) => e.topic)).toEqual(['collection:c1']);
    // The unsubscribe also withdrew the grant.
    expect(await client.call({ op: 'subscribe', topic: 'collection:c2' })).toMatchObject({ code: 'forbiddenError' });
  });

  it('refuses unknown services and paths outside or escaping the prefixes', async () => {
    expect(await client.call({ op: 'request', service: 'ghost', method: 'GET', path: '/x' })).toMatchObject({ op: 'error', code: 'invalidServiceError' });
    expect(await client.call({ op: 'request', service: 'notes', method: 'GET', path: '/admin/users' })).toMatchObject({ code: 'invalidPathError' });
    for (const path of ['/notes/../admin', '/notes/%2e%2e/admin', '/notes/%252e%252e/admin', '/notes/a%2f..%2fadmin', '/notes\\..\\admin', '//evil.example/notes', '/notes/%00']) {
      const r = await client.call({ op: 'request', service: 'notes', method: 'GET', path });
      expect(r, path).toMatchObject({ op: 'error', code: 'invalidPathError' });
    }
  });

  it('answers serverError with a message when the upstream times out or is down', async () => {
    const slow = await client.call({ op: 'request', service: 'notes', method: 'GET', path: '/notes/slow' }, 5000);
    expect(slow).toMatchObject({ op: 'error', code: 'serverError', message: 'service "notes" did not answer within 500 ms' });
    const dead = await freePort();
    await privateCall(gw.privateUrl, 'PUT', '/v1/services/dead', { upstream: `http://127.0.0.1:${dead}`, prefixes: ['/dead'] });
    const down = await client.call({ op: 'request', service: 'dead', method: 'GET', path: '/dead/x' });
    expect(down).toMatchObject({ op: 'error', code: 'serverError' });
    expect(String(down.message)).toContain('unreachable');
    expect(await client.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
  });
});

describe('POST /v1/proxy', () => {
  it('is the HTTP twin of a request frame', async () => {
    const t = await token('proxy-user', 'pt');
    const r = await privateCall(gw.privateUrl, 'POST', '/v1/proxy', { service: 'notes', method: 'PATCH', path: '/notes/x', body: { a: 1 } }, { 'x-access-token': t });
    expect(r).toMatchObject({ status: 200, body: { status: 200, body: { method: 'PATCH', url: '/notes/x', body: { a: 1 } } } });
    expect(await privateCall(gw.privateUrl, 'POST', '/v1/proxy', { service: 'notes', method: 'GET', path: '/notes/x' })).toMatchObject({ status: 401 });
    expect(await privateCall(gw.privateUrl, 'POST', '/v1/proxy', { service: 'ghost', method: 'GET', path: '/x' }, { 'x-access-token': t })).toMatchObject({
      status: 404,
      body: { error: { code: 'invalidServiceError' } },
    });
    expect(await privateCall(gw.privateUrl, 'POST', '/v1/proxy', { service: 'notes', method: 'GET', path: '/notes/../admin' }, { 'x-access-token': t })).toMatchObject({
      status: 400,
      body: { error: { code: 'invalidPathError' } },
    });
  });
});
