/**
 * Sync's request metrics (the ramp's Sync baseline), on the real reference
 * Sync app: HTTP and socket virtual requests are counted by status into
 * `sync_requests_total` and timed into `sync_request_duration_seconds` (same
 * buckets as the gateway's histogram), served on `GET /__bifrost/metrics`
 * next to the bridge's counters; the scrape itself is not counted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parsePrometheusText, type Sample } from '../../cli/migration/prometheus-text.ts';
import { REQUEST_DURATION_BUCKETS } from '../../gateway/metrics.ts';
import { signAccessToken } from '../../gateway/token.ts';
import { startSyncReference, type SyncReference } from '../../legacy/sync-app.ts';
import { connectSocketIo4Client } from '../support/legacy-clients.ts';
import { silentLogger } from '../support/silent-logger.ts';

const tokenSecret = 'legacy-request-metrics-secret';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function sync(): Promise<SyncReference> {
  const s = await startSyncReference({ port: 0, tokenSecret, log: silentLogger, env: {} });
  cleanup.push(() => s.close());
  return s;
}

async function scrape(s: SyncReference): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${s.url}/__bifrost/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  const text = await res.text();
  return { text, samples: parsePrometheusText(text) };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);

describe('Sync request metrics', () => {
  it('counts HTTP and socket virtual requests by status with a latency histogram on /__bifrost/metrics', async () => {
    const s = await sync();
    const token = await signAccessToken(tokenSecret, { userId: 'u1', teamId: 't1' });
    const auth = { 'x-access-token': token };

    // HTTP: 2 × 200, one 403 (no token), one 404 (unknown record), one 401 (Godserver, bad token).
    expect((await fetch(`${s.url}/godserver/init`, { headers: auth })).status).toBe(200);
    const created = await fetch(`${s.url}/collection`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'm1', workspace: 'w', name: 'n', data: {} }) });
    expect(created.status).toBe(200);
    expect((await fetch(`${s.url}/collection/m1`)).status).toBe(403);
    expect((await fetch(`${s.url}/collection/nope`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${s.url}/godserver/init`, { headers: { 'x-access-token': 'garbage' } })).status).toBe(401);

    // Socket virtual requests: one 200, one 404.
    const client = await connectSocketIo4Client({ url: s.url, token });
    cleanup.push(() => client.close());
    expect((await client.request('get', '/collection/m1')).statusCode).toBe(200);
    expect((await client.request('get', '/collection/missing')).statusCode).toBe(404);

    const { text, samples } = await scrape(s);
    expect(text).toContain('# TYPE sync_requests_total counter');
    expect(text).toContain('# TYPE sync_request_duration_seconds histogram');
    expect(text).toContain('# TYPE bifrost_sync_bridge_enabled gauge'); // the bridge's counters are still there
    expect(value(samples, 'sync_requests_total', { status: '200' })).toBe(3);
    expect(value(samples, 'sync_requests_total', { status: '403' })).toBe(1);
    expect(value(samples, 'sync_requests_total', { status: '404' })).toBe(2);
    expect(value(samples, 'sync_requests_total', { status: '401' })).toBe(1);
    expect(value(samples, 'sync_requests_total')).toBe(7);

    // The histogram: the gateway's buckets, one observation per request.
    const buckets = samples.filter((x) => x.name === 'sync_request_duration_seconds_bucket');
    expect(buckets.map((b) => b.labels.le)).toEqual([...REQUEST_DURATION_BUCKETS.map(String), '+Inf']);
    expect(buckets.find((b) => b.labels.le === '+Inf')!.value).toBe(7);
    expect(value(samples, 'sync_request_duration_seconds_count')).toBe(7);
    expect(value(samples, 'sync_request_duration_seconds_sum')).toBeGreaterThan(0);
    expect(buckets.find((b) => b.labels.le === '10')!.value).toBe(7); // local requests are well under 10 s

    // Scrapes (and the bridge counters) are not counted.
    await fetch(`${s.url}/__bifrost/bridge`).then((r) => r.text());
    const again = await scrape(s);
    expect(value(again.samples, 'sync_requests_total')).toBe(7);
  });

  it('keeps separate counts per app instance in one process', async () => {
    const [a, b] = await Promise.all([sync(), sync()]);
    const token = await signAccessToken(tokenSecret, { userId: 'u2', teamId: 't2' });
    for (let i = 0; i < 3; i++) expect((await fetch(`${a.url}/godserver/init`, { headers: { 'x-access-token': token } })).status).toBe(200);
    expect(value((await scrape(a)).samples, 'sync_requests_total', { status: '200' })).toBe(3);
    expect(value((await scrape(b)).samples, 'sync_requests_total')).toBe(0);
  });
});
