/** The shim's time-bucketed counters (`recent` in GET /api/rollout), on an injected clock. */
import { describe, expect, it } from 'vitest';
import { RECENT_BUCKET_MS, RECENT_WINDOW_MS, RecentCounts } from '../../proxy/recent-counts.ts';
import { DecisionStats } from '../../proxy/decision-stats.ts';
import { UpgradeStats } from '../../proxy/upgrade-stats.ts';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('RecentCounts', () => {
  it('defaults to 10 s buckets over 5 minutes', () => {
    const r = new RecentCounts();
    expect(RECENT_BUCKET_MS).toBe(10_000);
    expect(RECENT_WINDOW_MS).toBe(300_000);
    expect(r.windowSeconds).toBe(300);
  });

  it('sums per key across the buckets of the window', () => {
    const c = clock();
    const r = new RecentCounts<'a' | 'b'>({ bucketMs: 10_000, windowMs: 60_000, now: c.now });
    r.add('a');
    r.add('a', 2);
    c.advance(15_000);
    r.add('b');
    c.advance(20_000);
    r.add('a');
    expect(r.totals()).toEqual({ a: 4, b: 1 });
    expect(r.get('a')).toBe(4);
    expect(r.get('b')).toBe(1);
  });

  it('forgets buckets that left the window, and reuses their slots cleanly', () => {
    const c = clock(0);
    const r = new RecentCounts<'x'>({ bucketMs: 10_000, windowMs: 30_000, now: c.now }); // 3 buckets
    r.add('x', 5); // bucket 0
    c.advance(10_000);
    r.add('x', 1); // bucket 1
    c.advance(10_000); // bucket 2: still sees 0..2
    expect(r.get('x')).toBe(6);
    c.advance(10_000); // bucket 3: bucket 0 is gone
    expect(r.get('x')).toBe(1);
    r.add('x', 7); // bucket 3 reuses bucket 0's slot: the old 5 must not come back
    expect(r.get('x')).toBe(8);
    c.advance(25_000); // bucket 5 (5.5): buckets 3..5 kept, bucket 1 gone
    expect(r.get('x')).toBe(7);
    c.advance(30_000); // nothing left
    expect(r.totals()).toEqual({});
  });

  it('rounds the window up to whole buckets and refuses a zero bucket', () => {
    expect(new RecentCounts({ bucketMs: 10_000, windowMs: 25_000 }).windowMs).toBe(30_000);
    expect(() => new RecentCounts({ bucketMs: 0 })).toThrow(/bucketMs/);
  });
});

describe('DecisionStats / UpgradeStats recent windows', () => {
  it('count decisions per route, and fold upgrade outcomes into ok / failed like the ramp guard (aborted is neither)', () => {
    const c = clock();
    const d = new DecisionStats({ now: c.now });
    d.record('bifrost', 'flag');
    d.record('sync', 'error');
    d.record('sync', 'flag');
    const u = new UpgradeStats({ now: c.now });
    for (const o of ['ok', 'ok', 'rejected', 'refused', 'error', 'unavailable', 'aborted']) u.record('bifrost', o);
    u.record('sync', 'ok');
    expect(d.recentSnapshot()).toEqual({ sync: 2, bifrost: 1 });
    expect(d.snapshot()).toEqual({ sync: 2, bifrost: 1, byReason: { flag: 2, error: 1 } });
    expect(u.recentSnapshot()).toEqual({ sync: { ok: 1, failed: 0 }, bifrost: { ok: 2, failed: 4 } });
    c.advance(RECENT_WINDOW_MS + RECENT_BUCKET_MS);
    expect(d.recentSnapshot()).toEqual({ sync: 0, bifrost: 0 });
    expect(d.snapshot().sync).toBe(2); // totals stay
    expect(u.recentSnapshot()).toEqual({ sync: { ok: 0, failed: 0 }, bifrost: { ok: 0, failed: 0 } });
  });
});
