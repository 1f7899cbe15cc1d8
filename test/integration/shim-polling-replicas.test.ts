/**
 * Long-polling sessions across shim replicas: a socket.io polling session's
 * later requests may reach a shim replica that never saw its handshake (a
 * non-sticky load balancer in front of several replicas, or a restarted shim).
 * Such a replica must still send them to the Bifrost node that holds the
 * session — otherwise engine.io answers "Session ID unknown" and the client
 * loops through handshakes. Two plain socket.io 4 servers stand in for two
 * Bifrost nodes (with /load), two shims share the route secret and the node
 * list, and raw engine.io v4 polling requests alternate between the shims.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRouteToken } from '../../proxy/route-token.ts';
import { startTestShim } from '../support/test-shim.ts';
import { startSocketIoBackend, type SocketIoBackend } from '../support/socket-io-backend.ts';
import type { ShimHandle } from '../../proxy/shim.ts';

const tokenSecret = 'polling-replicas-secret';
const routeSecret = 'polling-replicas-route-secret';
const adminToken = 'polling-replicas-admin';

/** One engine.io v4 polling request through a shim; returns the status and body. */
async function poll(shim: ShimHandle, route: string, opts: { sid?: string; body?: string } = {}): Promise<{ status: number; body: string }> {
  const q = new URLSearchParams({ EIO: '4', transport: 'polling', bf_route: route, t: String(Math.random()) });
  if (opts.sid) q.set('sid', opts.sid);
  const res = await fetch(`${shim.url}/socket.io/?${q}`, opts.body === undefined ? {} : { method: 'POST', body: opts.body, headers: { 'content-type': 'text/plain;charset=UTF-8' } });
  return { status: res.status, body: await res.text() };
}

/**
 * A whole socket.io session by hand, each request through the next shim in turn:
 * handshake, namespace connect, a virtual GET and its ack. Returns the node that answered.
 */
async function sessionAcross(shims: ShimHandle[], userId: string): Promise<string> {
  const route = signRouteToken(routeSecret, { userId, teamId: 'team' });
  let i = 0;
  const next = (): ShimHandle => shims[i++ % shims.length]!;
  const open = await poll(next(), route);
  expect(open.status).toBe(200);
  const sid = (JSON.parse(open.body.slice(1)) as { sid: string }).sid;
  const connect = await poll(next(), route, { sid, body: '40' });
  expect(connect, `namespace connect of ${userId}`).toEqual({ status: 200, body: 'ok' });
  const connected = await poll(next(), route, { sid });
  expect(connected.status, `connect ack of ${userId}`).toBe(200);
  expect(connected.body.startsWith('40')).toBe(true);
  const ask = await poll(next(), route, { sid, body: '421["get",{"method":"get","url":"/x","headers":{},"data":{}}]' });
  expect(ask).toEqual({ status: 200, body: 'ok' });
  const answer = await poll(next(), route, { sid });
  expect(answer.status).toBe(200);
  const m = /^431(\[.*\])$/.exec(answer.body);
  expect(m, `ack of ${userId}: ${answer.body}`).not.toBeNull();
  return (JSON.parse(m![1]!) as Array<{ body: { name: string } }>)[0]!.body.name;
}

let dir: string;
let nodes: SocketIoBackend[];
let shims: ShimHandle[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-polling-replicas-'));
  nodes = await Promise.all(['node-a', 'node-b'].map(startSocketIoBackend));
});
afterAll(async () => {
  await Promise.all(shims.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.close()));
  await rm(dir, { recursive: true, force: true });
});

async function shimReplica(): Promise<ShimHandle> {
  const setup = { dir, syncUrl: 'http://127.0.0.1:9', bifrostUrls: nodes.map((n) => n.url), tokenSecret, adminToken };
  const { shim } = await startTestShim(setup, { percent: 100 }, { routeSecret, godserverUrl: 'http://127.0.0.1:9' });
  shims.push(shim);
  return shim;
}

describe('long-polling sessions across shim replicas', () => {
  it('requests of one session alternating between two replicas all reach the node holding it; users spread over both nodes', async () => {
    const a = await shimReplica();
    const b = await shimReplica();
    const landed: Record<string, number> = { 'node-a': 0, 'node-b': 0 };
    for (let u = 0; u < 16; u++) landed[await sessionAcross([a, b], `poller-${u}`)]! += 1;
    // Placed by the user's hash: both nodes get users (16 users on one node would be 2^-15 likely).
    expect(landed['node-a']).toBeGreaterThan(0);
    expect(landed['node-b']).toBeGreaterThan(0);
    // Replica b adopted sessions it had not started, and counts them.
    const metrics = await (await fetch(`${b.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/bifrost_shim_polling_sessions_adopted_total\{backend="bifrost"\} 16/);
  });

  it('a session started before a shim restart continues through the restarted shim', async () => {
    const before = await shimReplica();
    const route = signRouteToken(routeSecret, { userId: 'restart-user', teamId: 'team' });
    const open = await poll(before, route);
    const sid = (JSON.parse(open.body.slice(1)) as { sid: string }).sid;
    expect(await poll(before, route, { sid, body: '40' })).toEqual({ status: 200, body: 'ok' });
    await before.close();
    shims = shims.filter((s) => s !== before);
    const after = await shimReplica();
    const connected = await poll(after, route, { sid });
    expect(connected.status).toBe(200);
    expect(connected.body.startsWith('40')).toBe(true);
    expect(await poll(after, route, { sid, body: '421["get",{"method":"get","url":"/x","headers":{},"data":{}}]' })).toEqual({ status: 200, body: 'ok' });
    expect((await poll(after, route, { sid })).body).toMatch(/^431\[\{"statusCode":200,"body":\{"name":"node-[ab]"\}/);
  });
});
