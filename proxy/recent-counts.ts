/**
 * Counts per key over a sliding window of fixed time buckets, for "what
 * happened in the last minutes" figures (`recent` in `GET /api/rollout`).
 *
 * Time is cut into buckets of `bucketMs`; a ring of `windowMs / bucketMs`
 * buckets is kept, and a bucket is reset when its slot is reused. `totals()`
 * sums the buckets still in the window: the current (partial) bucket and the
 * ones before it, so the figures cover the last `windowMs`, give or take one
 * bucket. Memory is fixed (one small map per bucket); nothing runs on a timer.
 * The clock is injected for tests.
 */

/** One bucket per 10 s. */
export const RECENT_BUCKET_MS = 10_000;
/** Five minutes: the window `bifrost rollout status` calls "the last minutes". */
export const RECENT_WINDOW_MS = 5 * 60_000;

export interface RecentCountsOptions {
  /** Bucket width, ms (default `RECENT_BUCKET_MS`). */
  bucketMs?: number;
  /** Window, ms; rounded up to whole buckets (default `RECENT_WINDOW_MS`). */
  windowMs?: number;
  /** Clock, ms (default `Date.now`). */
  now?: () => number;
}

interface Bucket<K extends string> {
  /** `floor(time / bucketMs)` of the period this slot holds; -1 = never used. */
  index: number;
  counts: Map<K, number>;
}

export class RecentCounts<K extends string> {
  readonly bucketMs: number;
  readonly windowMs: number;
  private readonly now: () => number;
  private readonly ring: Bucket<K>[];

  constructor(opts: RecentCountsOptions = {}) {
    this.bucketMs = opts.bucketMs ?? RECENT_BUCKET_MS;
    if (!(this.bucketMs > 0)) throw new Error(`bucketMs must be > 0, got ${this.bucketMs}`);
    const size = Math.max(1, Math.ceil((opts.windowMs ?? RECENT_WINDOW_MS) / this.bucketMs));
    this.windowMs = size * this.bucketMs;
    this.now = opts.now ?? Date.now;
    this.ring = Array.from({ length: size }, () => ({ index: -1, counts: new Map<K, number>() }));
  }

  get windowSeconds(): number {
    return this.windowMs / 1000;
  }

  /** Adds `n` (default 1) to `key` in the current bucket. */
  add(key: K, n = 1): void {
    const index = Math.floor(this.now() / this.bucketMs);
    const slot = this.ring[index % this.ring.length]!;
    if (slot.index !== index) {
      slot.index = index;
      slot.counts.clear();
    }
    slot.counts.set(key, (slot.counts.get(key) ?? 0) + n);
  }

  /** Sum per key over the buckets still inside the window (keys never counted are absent). */
  totals(): Partial<Record<K, number>> {
    const current = Math.floor(this.now() / this.bucketMs);
    const oldest = current - this.ring.length + 1;
    const out: Partial<Record<K, number>> = {};
    for (const b of this.ring) {
      if (b.index < oldest || b.index > current) continue;
      for (const [k, v] of b.counts) out[k] = (out[k] ?? 0) + v;
    }
    return out;
  }

  /** The window's total for one key. */
  get(key: K): number {
    return this.totals()[key] ?? 0;
  }
}
