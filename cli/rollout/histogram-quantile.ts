/**
 * A quantile from Prometheus histogram buckets, computed like PromQL's
 * `histogram_quantile`: find the bucket holding the rank, interpolate linearly
 * inside it; a rank in the +Inf bucket answers the highest finite bound.
 */

/** One cumulative bucket: observations ≤ `le`. */
export interface CumulativeBucket {
  le: number;
  count: number;
}

/** The q-quantile (0..1) of cumulative buckets, or null when there are no observations. */
export function histogramQuantile(q: number, buckets: CumulativeBucket[]): number | null {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  if (sorted.length === 0) return null;
  const total = sorted[sorted.length - 1]!.count;
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe;
      const inBucket = b.count - prevCount;
      if (inBucket <= 0) return b.le;
      return prevLe + (b.le - prevLe) * ((rank - prevCount) / inBucket);
    }
    prevLe = Number.isFinite(b.le) ? b.le : prevLe;
    prevCount = b.count;
  }
  return prevLe;
}
