/**
 * The native protocol on /ws against a real gateway node: authentication,
 * subscribe / publish / unsubscribe, and every kind of bad input, each
 * checked for its precise error and for leaving a second client unharmed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import type { RunningGateway } from '../../gateway/gateway.ts';
import { NativeClient, upgradeStatus } from '../support/native-client.ts';
import { privateCall, startTestGateway, token, TEST_SECRET } from '../support/gateway.ts';

let gw: RunningGateway;
let bystander: NativeClient;

beforeAll(async () => {
  gw = await startTestGateway({ maxFrameBytes: 8 * 1024, opRatePerSec: 20, opBurst: 40, maxBufferedBytes: 256 * 1024 });
  bystander = await NativeClient.connect(gw.publicUrl, await token('bystander', 'tb'));
  expect(await bystander.call({ op: 'subscribe', topic: 'user:bystander' })).toMatchObject({ op: 'ok' });
});
afterAll(async () => {
  bystander?.close();
  await gw?.close();
});

/** The well-behaved client connected all along still gets its events. */
async function bystanderStillServed(): Promise<void> {
  const before = bystander.events.length;
  const marker = Math.random();
  await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:bystander', event: 'ping', data: { marker } });
  await bystander.waitFor((f) => f.op === 'event' && (f.data as { marker?: number })?.marker === marker, 5000, 'bystander event');
  expect(bystander.events.length).toBe(before + 1);
}

describe('authentication at the upgrade', () => {
  it('accepts a valid token in the Authorization header or ?token=', async () => {
    const t = await token('u1', 't1');
    const a = await NativeClient.connect(gw.publicUrl, t, { header: true });
    const b = await NativeClient.connect(gw.publicUrl, t);
    expect(await a.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(await b.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
    a.close();
    b.close();
  });

  it('refuses missing, expired, wrongly signed and alg:none tokens with HTTP 401', async () => {
    const ws = gw.publicUrl + '/ws';
    expect(await upgradeStatus(ws)).toBe(401);
    expect(await upgradeStatus(ws + '?token=' + (await token('u1', 't1', -10)))).toBe(401);
    expect(await upgradeStatus(ws + '?token=' + (await token('u1', 't1', '1h', 'another-secret')))).toBe(401);
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ sub: 'u1', team: 't1', exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url');
    expect(await upgradeStatus(ws + `?token=${header}.${payload}.`)).toBe(401);
    const noTeam = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setExpirationTime('1h').sign(new TextEncoder().encode(TEST_SECRET));
    expect(await upgradeStatus(ws + '?token=' + noTeam)).toBe(401);
    expect(await upgradeStatus(ws, { authorization: 'Bearer garbage' })).toBe(401);
    await bystanderStillServed();
  });

  it('answers 404 to upgrades on other paths', async () => {
    expect(await upgradeStatus(gw.publicUrl + '/nope?token=' + (await token()))).toBe(404);
  });

  it('closes the socket with 4001 when the token expires', async () => {
    const c = await NativeClient.connect(gw.publicUrl, await token('u-exp', 't1', 2));
    expect(await c.waitClose(5000)).toBe(4001);
  });
});

describe('subscribe and events', () => {
  it('delivers published events to the subscribers of a topic only', async () => {
    const a = await NativeClient.connect(gw.publicUrl, await token('ua', 'team-x'));
    const b = await NativeClient.connect(gw.publicUrl, await token('ub', 'team-x'));
    const ok = await a.call({ op: 'subscribe', topic: 'team:team-x' });
    expect(ok).toMatchObject({ op: 'ok', position: { offset: expect.any(String), epoch: expect.any(String) } });
    await b.call({ op: 'subscribe', topic: 'user:ub' });
    const pub = await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'team:team-x', event: 'collection', data: { verb: 'updated', id: 'c1' } });
    expect(pub.status).toBe(200);
    const ev = await a.waitFor((f) => f.op === 'event');
    expect(ev).toEqual({ op: 'event', topic: 'team:team-x', event: 'collection', offset: pub.body.offset, data: { verb: 'updated', id: 'c1' } });
    await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:ub', event: 'n', data: 1 });
    await b.waitFor((f) => f.op === 'event');
    expect(b.events.map((e) => e.topic)).toEqual(['user:ub']);
    expect(await a.call({ op: 'unsubscribe', topic: 'team:team-x' })).toMatchObject({ op: 'ok' });
    await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'team:team-x', event: 'collection', data: 2 });
    await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:ua', event: 'marker', data: 3 });
    expect(a.events).toHaveLength(1);
    a.close();
    b.close();
  });

  it('refuses topics the user may not subscribe to with forbiddenError', async () => {
    const a = await NativeClient.connect(gw.publicUrl, await token('ua', 'ta'));
    expect(await a.call({ op: 'subscribe', topic: 'user:someone-else' })).toMatchObject({ op: 'error', code: 'forbiddenError' });
    expect(await a.call({ op: 'subscribe', topic: 'team:other-team' })).toMatchObject({ op: 'error', code: 'forbiddenError' });
    expect(await a.call({ op: 'subscribe', topic: 'collection:c1' })).toMatchObject({ op: 'error', code: 'forbiddenError' });
    expect(await a.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
    a.close();
  });

  it('lets a service subscribe a user through the private API', async () => {
    const a = await NativeClient.connect(gw.publicUrl, await token('svc-user', 'ta'));
    const r = await privateCall(gw.privateUrl, 'POST', '/v1/connections/subscribe', { userId: 'svc-user', topics: ['collection:granted'] });
    expect(r).toMatchObject({ status: 200, body: { ok: true } });
    await new Promise((res) => setTimeout(res, 100));
    await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'collection:granted', event: 'collection', data: { id: 'granted' } });
    expect((await a.waitFor((f) => f.op === 'event')).topic).toBe('collection:granted');
    // The grant also allows an explicit subscribe (e.g. with a position).
    expect(await a.call({ op: 'subscribe', topic: 'collection:granted' })).toMatchObject({ op: 'ok' });
    const d = await privateCall(gw.privateUrl, 'POST', '/v1/connections/disconnect', { userId: 'svc-user', reconnect: true });
    expect(d.status).toBe(200);
    expect(await a.waitClose()).toBe(1012);
    expect(a.frames.some((f) => f.op === 'reconnect')).toBe(true);
  });
});

describe('bad input', () => {
  it('answers malformed JSON, unknown ops and invalid fields with badRequest and keeps the connection', async () => {
    const c = await NativeClient.connect(gw.publicUrl, await token('bad', 't'));
    c.sendRaw('{not json');
    expect(await c.waitFor((f) => f.op === 'error')).toMatchObject({ code: 'badRequest', message: 'frame is not valid JSON' });
    expect(await c.call({ op: 'explode' })).toMatchObject({ op: 'error', code: 'badRequest', message: 'unknown op "explode"' });
    expect(await c.call({ op: 'subscribe', topic: 'bad\ntopic' })).toMatchObject({ code: 'badRequest' });
    expect(await c.call({ op: 'subscribe', topic: 'x'.repeat(201) })).toMatchObject({ code: 'badRequest' });
    expect(await c.call({ op: 'subscribe', topic: 'user:bad', since: { offset: 5 } })).toMatchObject({ code: 'badRequest' });
    expect(await c.call({ op: 'request', service: 'x', method: 'TRACE', path: '/a' })).toMatchObject({ code: 'badRequest' });
    c.sendRaw('[1,2,3]');
    c.sendRaw('{"__proto__":{"polluted":true},"op":"ping","id":77}');
    expect(await c.waitFor((f) => f.id === 77)).toMatchObject({ op: 'pong' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    c.sendRaw(Buffer.from([1, 2, 3]), true);
    await c.waitFor((f) => f.op === 'error' && String(f.message).includes('binary'));
    c.sendRaw('{"op":"ping","id":' + '9'.repeat(400) + '}');
    expect(await c.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
    c.close();
    await bystanderStillServed();
  });

  it('closes a socket that sends a frame over the limit with 1009', async () => {
    const c = await NativeClient.connect(gw.publicUrl, await token('big', 't'));
    c.sendRaw(JSON.stringify({ op: 'ping', pad: 'x'.repeat(20 * 1024) }));
    expect(await c.waitClose()).toBe(1009);
    // ws reported it as a socket error, which the connection counted (and nothing threw).
    const metrics = await (await fetch(gw.publicUrl + '/metrics')).text();
    expect(metrics).toMatch(/bifrost_frames_rejected_total\{[^}]*reason="WS_ERR_UNSUPPORTED_MESSAGE_LENGTH"[^}]*\} 1/);
    await bystanderStillServed();
  });

  it('throttles a client over its operation rate with throttleError', async () => {
    const c = await NativeClient.connect(gw.publicUrl, await token('fast', 't'));
    for (let i = 0; i < 120; i++) c.send({ op: 'ping' });
    await c.waitFor((f) => f.op === 'error' && f.code === 'throttleError');
    const pongs = () => c.frames.filter((f) => f.op === 'pong').length;
    await new Promise((r) => setTimeout(r, 200));
    expect(pongs()).toBeGreaterThanOrEqual(40);
    expect(pongs()).toBeLessThan(120);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await c.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
    c.close();
    await bystanderStillServed();
  });

  it('answers a throttled or binary frame with the id it was sent with (when id is its first member)', async () => {
    const c = await NativeClient.connect(gw.publicUrl, await token('fast-ids', 't'));
    for (let i = 0; i < 60; i++) c.sendRaw(JSON.stringify({ id: `p${i}`, op: 'ping' }));
    const throttled = await c.waitFor((f) => f.op === 'error' && f.code === 'throttleError');
    expect(throttled.id).toMatch(/^p\d+$/);
    // Every frame sent got exactly one answer carrying its id.
    await c.waitFor((f) => f.id === 'p59');
    expect(new Set(c.frames.map((f) => f.id)).size).toBe(60);
    expect(c.frames.every((f) => f.id !== undefined)).toBe(true);
    await new Promise((r) => setTimeout(r, 1000));
    c.sendRaw(Buffer.from('{"id":41,"op":"ping"}'), true);
    expect(await c.waitFor((f) => f.id === 41)).toMatchObject({ op: 'error', code: 'badRequest' });
    c.close();
  });

  it('closes a consumer that stops reading with 4008 and keeps serving the others', async () => {
    const c = await NativeClient.connect(gw.publicUrl, await token('slow', 't'));
    await c.call({ op: 'subscribe', topic: 'user:slow' });
    // ws's own pause (8.x): pausing its raw socket instead is undone by ws when its receiver drains,
    // so under load the client kept reading and the server never had a reason to give up.
    c.ws.pause();
    const closed = c.waitClose(20_000);
    const big = 'y'.repeat(32 * 1024);
    const slowClosed = async () => /bifrost_slow_consumers_total\{[^}]*protocol="native"[^}]*\} 1/.test(await (await fetch(gw.publicUrl + '/metrics')).text());
    let published = 0;
    while (!(await slowClosed())) {
      if (published > 2000) throw new Error('the server never gave up on the paused consumer');
      await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:slow', event: 'bulk', data: { i: published++, big } });
    }
    c.ws.resume();
    expect(await closed).toBe(4008);
    await bystanderStillServed();
  });
});

describe('metric labels', () => {
  it('labels a request to an unknown service `unrouted`, never with the client-chosen name', async () => {
    const c = await NativeClient.connect(gw.publicUrl, await token('labels', 't'));
    const bogus = `no-such-service-${Math.random().toString(36).slice(2)}`;
    expect(await c.call({ op: 'request', service: bogus, method: 'GET', path: '/x' })).toMatchObject({ op: 'error', code: 'invalidServiceError' });
    const text = await (await fetch(gw.publicUrl + '/metrics')).text();
    expect(text).not.toContain(bogus);
    expect(text).toMatch(/bifrost_requests_total\{[^}]*protocol="native"[^}]*service="unrouted"[^}]*status="invalidServiceError"[^}]*\} [1-9]/);
    // A registered service keeps its name on errors, before routing (a path outside its prefixes) or after (upstream down).
    expect((await privateCall(gw.privateUrl, 'PUT', '/v1/services/labelled', { upstream: 'http://127.0.0.1:1', prefixes: ['/in'] })).status).toBe(200);
    expect(await c.call({ op: 'request', service: 'labelled', method: 'GET', path: '/out' })).toMatchObject({ code: 'invalidPathError' });
    expect(await c.call({ op: 'request', service: 'labelled', method: 'GET', path: '/in/x' })).toMatchObject({ code: 'serverError' });
    const after = await (await fetch(gw.publicUrl + '/metrics')).text();
    expect(after).toMatch(/bifrost_requests_total\{[^}]*service="labelled"[^}]*status="invalidPathError"[^}]*\} 1/);
    expect(after).toMatch(/bifrost_requests_total\{[^}]*service="labelled"[^}]*status="serverError"[^}]*\} 1/);
    c.close();
  });
});

describe('probes and metrics', () => {
  it('serves /healthz, /readyz, /load and bifrost_* metrics', async () => {
    expect((await fetch(gw.publicUrl + '/healthz')).status).toBe(200);
    const ready = await fetch(gw.publicUrl + '/readyz');
    expect(ready.status).toBe(200);
    const load = await (await fetch(gw.publicUrl + '/load')).json();
    expect(load).toMatchObject({ loadFactor: expect.any(Number), draining: false, dimensions: { cpu: expect.any(Number), connections: expect.any(Number) } });
    const metrics = await (await fetch(gw.publicUrl + '/metrics')).text();
    expect(metrics).toMatch(/bifrost_connections\{[^}]*protocol="native"[^}]*\} \d+/);
    expect(metrics).toMatch(/bifrost_frames_rejected_total\{[^}]*reason="bad-request"/);
    expect(metrics).toContain('bifrost_load_factor');
  });
});
