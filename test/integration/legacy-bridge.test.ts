/**
 * The dual-publish bridge hook of the reference Sync app, against a real HTTP
 * server standing in for Bifrost's private API: what it publishes, retries
 * with order kept per topic, a Bifrost that is down, a full queue, and
 * publications refused for good.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import type { BridgeStats } from '../../legacy/bridge-queue.ts';
import { startSyncReference, type SyncReference, type SyncReferenceOptions } from '../../legacy/sync-app.ts';
import { connectSailsIoClient, connectSocketIo4Client, type LegacyClient } from '../support/legacy-clients.ts';
import { startPublishRecorder, unusedPort, type PublishRecorder, type RecordedPublish } from '../support/publish-recorder.ts';
import { silentLogger } from '../support/silent-logger.ts';

const tokenSecret = 'legacy-bridge-test-secret';
const serviceToken = 'legacy-bridge-test-service-token';
// A generous attempt timeout: tests that count attempts exactly must not see a slow-but-fine call time out.
const fastRetry = { minRetryDelayMs: 20, maxRetryDelayMs: 200, publishTimeoutMs: 15_000 };

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function sync(opts: SyncReferenceOptions): Promise<SyncReference> {
  const s = await startSyncReference({ port: 0, tokenSecret, serviceToken, log: silentLogger, env: {}, bridgeFlushTimeoutMs: 0, ...opts });
  cleanup.push(() => s.close());
  return s;
}

async function recorder(port = 0): Promise<PublishRecorder> {
  const r = await startPublishRecorder(port);
  cleanup.push(() => r.close());
  return r;
}

async function client(s: SyncReference, connect = connectSailsIoClient, user = 'u1'): Promise<LegacyClient> {
  const c = await connect({ url: s.url, token: await signAccessToken(tokenSecret, { userId: user, teamId: 't1' }) });
  cleanup.push(() => c.close());
  return c;
}

/** HTTP request to the app, as an upstream caller (e.g. Bifrost's proxy) would make it. */
async function http(s: SyncReference, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(s.url + path, {
    method,
    headers: { 'content-type': 'application/json', 'x-access-token': await signAccessToken(tokenSecret, { userId: 'u1', teamId: 't1' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* plain text body */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

async function statsOverHttp(s: SyncReference): Promise<BridgeStats> {
  const res = await fetch(`${s.url}/__bifrost/bridge`);
  expect(res.status).toBe(200);
  return (await res.json()) as BridgeStats;
}

async function until<T>(what: string, probe: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const nameOf = (c: RecordedPublish) => ((c.data as { data?: { name?: string } }).data?.name ?? '');
const seqOf = (c: RecordedPublish) => Number(c.idempotencyKey.split(':').pop());

describe('Sync bridge hook (dual-publish to Bifrost)', () => {
  it('publishes every model event with the exact Sails payload, topic collection:<id> and the service token', async () => {
    const bifrost = await recorder();
    const s = await sync({ bifrostPrivateUrl: bifrost.url, bridge: fastRetry });
    const writer = await client(s, connectSailsIoClient, 'writer');
    const reader = await client(s, connectSocketIo4Client, 'reader');

    const fields = { id: 'c1', workspace: 'w1', name: 'one', data: { n: 1 } };
    const created = await writer.request('post', '/collection', fields);
    expect(created.statusCode).toBe(200);
    const read = await reader.request('get', '/collection/c1');
    expect(read.statusCode).toBe(200);
    expect(read.headers['x-bifrost-subscribe']).toBe('collection:c1');
    expect((await writer.request('patch', '/collection/c1', { name: 'two' })).statusCode).toBe(200);
    const updatedEvent = await reader.waitFor<{ verb: string }>('collection', (e) => e.verb === 'updated', 5_000);
    // A change made over HTTP (as Bifrost's proxy makes them) is bridged too.
    expect((await http(s, 'DELETE', '/collection/c1')).status).toBe(200);
    const destroyedEvent = await reader.waitFor<{ verb: string }>('collection', (e) => e.verb === 'destroyed', 5_000);

    const calls = await bifrost.waitForAccepted(3, 10_000);
    expect(calls.map((c) => [c.topic, c.event, (c.data as { verb: string }).verb])).toEqual([
      ['collection:c1', 'collection', 'created'],
      ['collection:c1', 'collection', 'updated'],
      ['collection:c1', 'collection', 'destroyed'],
    ]);
    expect(calls[0].data).toEqual({ verb: 'created', id: 'c1', data: created.body });
    // What Bifrost gets is what Sync's own sockets got, field for field.
    expect(calls[1].data).toEqual(updatedEvent);
    expect(calls[2].data).toEqual(destroyedEvent);
    expect(new Set(calls.map((c) => c.authorization))).toEqual(new Set([`Bearer ${serviceToken}`]));
    expect(new Set(calls.map((c) => c.idempotencyKey)).size).toBe(3);

    const stats = await statsOverHttp(s);
    expect(stats).toMatchObject({ enabled: true, target: `${bifrost.url}/v1/publish`, queued: 0, enqueuedTotal: 3, publishedTotal: 3, failedAttemptsTotal: 0, rejectedTotal: 0, droppedQueueFullTotal: 0 });
    expect(s.bridgeStats()).toMatchObject({ publishedTotal: 3 });
  });

  it('adds x-bifrost-subscribe only to successful single-record reads', async () => {
    const bifrost = await recorder();
    const s = await sync({ bifrostPrivateUrl: bifrost.url, bridge: fastRetry });
    expect((await http(s, 'POST', '/collection', { id: 'h1', name: 'h' })).status).toBe(200);
    const one = await http(s, 'GET', '/collection/h1');
    expect(one.status).toBe(200);
    expect(one.headers.get('x-bifrost-subscribe')).toBe('collection:h1');
    const missing = await http(s, 'GET', '/collection/nope');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-bifrost-subscribe')).toBeNull();
    const list = await http(s, 'GET', '/collection');
    expect(list.status).toBe(200);
    expect(list.headers.get('x-bifrost-subscribe')).toBeNull();
  });

  it('retries failed publishes with backoff, with the same idempotency key, keeping each topic in order', async () => {
    const bifrost = await recorder();
    const failures = 5;
    bifrost.respond = (_call, i) => (i < failures ? 503 : 200);
    const s = await sync({ bifrostPrivateUrl: bifrost.url, bridge: { ...fastRetry, maxConcurrentTopics: 2 } });
    const c = await client(s);
    for (const id of ['a', 'b']) expect((await c.request('post', '/collection', { id, name: `${id}0` })).statusCode).toBe(200);
    for (let i = 1; i <= 10; i++) {
      for (const id of ['a', 'b']) expect((await c.request('patch', `/collection/${id}`, { name: `${id}${i}` })).statusCode).toBe(200);
    }

    const accepted = await bifrost.waitForAccepted(22, 20_000);
    for (const id of ['a', 'b']) {
      const topic = `collection:${id}`;
      expect(accepted.filter((x) => x.topic === topic).map(nameOf)).toEqual(Array.from({ length: 11 }, (_, i) => `${id}${i}`));
      // Across every attempt (failed ones included), a topic never goes backwards.
      const seqs = bifrost.calls.filter((x) => x.topic === topic).map(seqOf);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    }
    // Every failed call was retried under the same key, and no key was accepted twice.
    const acceptedKeys = accepted.map((x) => x.idempotencyKey);
    expect(new Set(acceptedKeys).size).toBe(22);
    for (const failed of bifrost.calls.filter((x) => x.status === 503)) expect(acceptedKeys).toContain(failed.idempotencyKey);
    expect(bifrost.calls.filter((x) => x.status === 503)).toHaveLength(failures);

    const stats = await until('the queue to drain', () => s.bridgeStats(), (st) => st.queued === 0);
    expect(stats).toMatchObject({ publishedTotal: 22, failedAttemptsTotal: failures, rejectedTotal: 0, droppedQueueFullTotal: 0 });
    expect(stats.lastError).toMatch(/503/);
  });

  it('lets Sync requests succeed while Bifrost is down, counts the queued publishes, and delivers them when it is back', async () => {
    const port = await unusedPort();
    const s = await sync({ bifrostPrivateUrl: `http://127.0.0.1:${port}`, bridge: fastRetry });
    const c = await client(s);
    expect((await c.request('post', '/collection', { id: 'd1', name: 'v0' })).statusCode).toBe(200);
    for (let i = 1; i <= 3; i++) expect((await c.request('patch', '/collection/d1', { name: `v${i}` })).statusCode).toBe(200);
    expect((await http(s, 'GET', '/collection/d1')).status).toBe(200);

    const down = await until('failed attempts to be counted', () => statsOverHttp(s), (st) => st.failedAttemptsTotal >= 2);
    expect(down).toMatchObject({ enabled: true, queued: 4, enqueuedTotal: 4, publishedTotal: 0, droppedQueueFullTotal: 0, rejectedTotal: 0 });
    expect(down.lastError).toMatch(/publish failed/);

    const bifrost = await recorder(port);
    const accepted = await bifrost.waitForAccepted(4, 15_000);
    expect(accepted.map(nameOf)).toEqual(['v0', 'v1', 'v2', 'v3']);
    const up = await until('the queue to drain', () => statsOverHttp(s), (st) => st.queued === 0);
    expect(up).toMatchObject({ publishedTotal: 4, droppedQueueFullTotal: 0 });
  });

  it('times out a publish Bifrost never answers and retries it under the same key', async () => {
    const bifrost = await recorder();
    bifrost.respond = (_call, i) => (i === 0 ? 'hang' : 200);
    const s = await sync({ bifrostPrivateUrl: bifrost.url, bridge: { ...fastRetry, publishTimeoutMs: 300 } });
    const c = await client(s);
    expect((await c.request('post', '/collection', { id: 't1', name: 'v0' })).statusCode).toBe(200);
    expect((await c.request('patch', '/collection/t1', { name: 'v1' })).statusCode).toBe(200);
    const accepted = await bifrost.waitForAccepted(2, 10_000);
    expect(accepted.map(nameOf)).toEqual(['v0', 'v1']);
    // The unanswered call timed out and went again under the same key, before v1.
    expect([nameOf(bifrost.calls[0]), bifrost.calls[0].status]).toEqual(['v0', 0]);
    expect(accepted[0].idempotencyKey).toBe(bifrost.calls[0].idempotencyKey);
    expect(bifrost.calls.findIndex((x) => nameOf(x) === 'v1')).toBeGreaterThan(bifrost.calls.indexOf(accepted[0]));
    const stats = await until('the queue to drain', () => s.bridgeStats(), (st) => st.queued === 0);
    expect(stats).toMatchObject({ publishedTotal: 2 });
    expect(stats.failedAttemptsTotal).toBeGreaterThanOrEqual(1);
  });

  it('counts and logs events dropped because the queue is full, and what close() abandons', async () => {
    const lines: Array<{ msg: string; [k: string]: unknown }> = [];
    const log = pino({ level: 'warn' }, new Writable({ write: (chunk, _enc, cb) => (lines.push(JSON.parse(String(chunk))), cb()) }));
    const port = await unusedPort();
    const s = await startSyncReference({
      port: 0, tokenSecret, serviceToken, env: {}, log, bridgeFlushTimeoutMs: 0,
      bifrostPrivateUrl: `http://127.0.0.1:${port}`,
      bridge: { ...fastRetry, maxQueue: 3 },
    });
    let closed = false;
    cleanup.push(async () => void (closed || (await s.close())));
    const c = await client(s);
    expect((await c.request('post', '/collection', { id: 'f1', name: 'v0' })).statusCode).toBe(200);
    for (let i = 1; i <= 4; i++) expect((await c.request('patch', '/collection/f1', { name: `v${i}` })).statusCode).toBe(200);

    const stats = await until('a failed attempt', () => statsOverHttp(s), (st) => st.failedAttemptsTotal >= 1);
    expect(stats).toMatchObject({ maxQueue: 3, queued: 3, enqueuedTotal: 3, droppedQueueFullTotal: 2, publishedTotal: 0 });
    const metrics = await (await fetch(`${s.url}/__bifrost/metrics`)).text();
    expect(metrics).toContain('# TYPE bifrost_sync_bridge_dropped_queue_full_total counter\nbifrost_sync_bridge_dropped_queue_full_total 2\n');
    expect(metrics).toContain('bifrost_sync_bridge_queue_depth 3\n');
    expect(metrics).toMatch(/^bifrost_sync_bridge_failed_attempts_total [1-9]\d*$/m);
    expect(lines.some((l) => l.msg === 'bridge queue full: event not published to Bifrost' && l.maxQueue === 3)).toBe(true);
    expect(lines.some((l) => l.msg === 'bridge publish to Bifrost failed; retrying with backoff')).toBe(true);

    await s.close();
    closed = true;
    expect(s.bridgeStats()).toMatchObject({ queued: 0, discardedOnCloseTotal: 3, droppedQueueFullTotal: 2 });
    expect(lines.some((l) => l.msg === 'bridge closed with events not yet published to Bifrost' && l.discarded === 3)).toBe(true);
  });

  it('counts a publication Bifrost refuses for good (4xx) without retrying it, and goes on with the next', async () => {
    const bifrost = await recorder();
    bifrost.respond = (_call, i) => (i === 0 ? 400 : 200);
    const s = await sync({ bifrostPrivateUrl: bifrost.url, bridge: fastRetry });
    const c = await client(s);
    expect((await c.request('post', '/collection', { id: 'r1', name: 'v0' })).statusCode).toBe(200);
    expect((await c.request('patch', '/collection/r1', { name: 'v1' })).statusCode).toBe(200);
    const accepted = await bifrost.waitForAccepted(1, 10_000);
    expect(accepted.map(nameOf)).toEqual(['v1']);
    // Same topic, so the refused one was settled before v1 went out: exactly two calls, no retry.
    expect(bifrost.calls.map((x) => [nameOf(x), x.status])).toEqual([['v0', 400], ['v1', 200]]);
    const stats = await until('the queue to drain', () => s.bridgeStats(), (st) => st.queued === 0);
    expect(stats).toMatchObject({ rejectedTotal: 1, publishedTotal: 1, failedAttemptsTotal: 0 });
  });

  it('is off without a Bifrost private URL: no publishes, no subscribe header, stats say disabled', async () => {
    const s = await sync({ bifrostPrivateUrl: undefined });
    expect((await http(s, 'POST', '/collection', { id: 'o1', name: 'x' })).status).toBe(200);
    const one = await http(s, 'GET', '/collection/o1');
    expect(one.status).toBe(200);
    expect(one.headers.get('x-bifrost-subscribe')).toBeNull();
    expect(await statsOverHttp(s)).toMatchObject({ enabled: false, enqueuedTotal: 0 });
  });
});
