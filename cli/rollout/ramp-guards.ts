/**
 * The ramp's guards, evaluated on a metrics window (what happened since the
 * current step began):
 *
 * - `upgrade-failures`: Bifrost-routed socket upgrades the shim could not
 *   complete (rejected, refused, error, unavailable) over all Bifrost upgrades.
 *   When Sync also carried upgrades in the window, Sync's failure rate is the
 *   baseline: the guard breaches only when Bifrost is worse than Sync by more
 *   than the limit (a failure both paths share is not Bifrost's doing).
 * - `request-errors`: requests through the gateways answered 5xx, serverError
 *   or unavailable, over all requests.
 * - `p99-latency`: the 99th percentile of `bifrost_request_duration_seconds`
 *   from the histogram's delta.
 *
 * A rate needs at least `minRequests` events in the window before it can
 * breach, so one unlucky request at a 1% step does not roll back a ramp.
 * Requests and latency have no Sync baseline: the reference Sync exposes no
 * request metrics, so those compare with the absolute limits only.
 */
import type { WindowSummary } from './metrics-window.ts';

/** `metrics-unavailable`: no source could be read during a whole step (the ramp never moves blind). */
export type GuardName = 'upgrade-failures' | 'request-errors' | 'p99-latency' | 'metrics-unavailable';

export interface GuardLimits {
  /** 0..1. */
  maxErrorRate: number;
  /** Null: no latency guard. */
  maxP99Ms: number | null;
  minRequests: number;
}

export interface GuardReading {
  guard: GuardName;
  /** Rate (0..1) or milliseconds; null when there was too little traffic to tell. */
  value: number | null;
  limit: number | null;
  /** Sync's value measured the same way, when Sync carried traffic. */
  baseline: number | null;
  /** Events the value is computed from. */
  events: number;
  breached: boolean;
  /** One human line with the numbers. */
  text: string;
}

const pct = (r: number): string => `${(r * 100).toFixed(r > 0 && r < 0.001 ? 3 : r < 0.1 ? 2 : 1)}%`;

export function evaluateGuards(w: WindowSummary, limits: GuardLimits): GuardReading[] {
  const out: GuardReading[] = [];

  const b = w.upgrades.bifrost;
  const s = w.upgrades.sync;
  if (b.total >= limits.minRequests && b.total > 0) {
    const rate = b.failed / b.total;
    const baseline = s.total >= limits.minRequests && s.total > 0 ? s.failed / s.total : null;
    const breached = rate > limits.maxErrorRate && (baseline === null || rate - baseline > limits.maxErrorRate);
    const vs = baseline === null ? '' : ` vs Sync ${s.failed} of ${s.total} (${pct(baseline)})`;
    const lim = baseline === null ? `limit ${pct(limits.maxErrorRate)}` : `limit ${pct(limits.maxErrorRate)} above Sync`;
    out.push({ guard: 'upgrade-failures', value: rate, limit: limits.maxErrorRate, baseline, events: b.total, breached, text: `Bifrost upgrade failures ${b.failed} of ${b.total} (${pct(rate)})${vs} ${breached ? '>' : 'within'} ${lim}` });
  } else {
    out.push({ guard: 'upgrade-failures', value: null, limit: limits.maxErrorRate, baseline: null, events: b.total, breached: false, text: `Bifrost upgrades: ${b.total} in the window (fewer than ${limits.minRequests}: not judged)` });
  }

  const r = w.requests;
  if (r.total >= limits.minRequests && r.total > 0) {
    const rate = r.errors / r.total;
    const breached = rate > limits.maxErrorRate;
    out.push({ guard: 'request-errors', value: rate, limit: limits.maxErrorRate, baseline: null, events: r.total, breached, text: `request error rate ${pct(rate)} (${r.errors} of ${r.total} requests: 5xx/serverError) ${breached ? '>' : 'within'} limit ${pct(limits.maxErrorRate)}` });
  } else {
    out.push({ guard: 'request-errors', value: null, limit: limits.maxErrorRate, baseline: null, events: r.total, breached: false, text: `requests: ${r.total} in the window (fewer than ${limits.minRequests}: not judged)` });
  }

  const observed = w.latencyBuckets.length ? w.latencyBuckets[w.latencyBuckets.length - 1]!.count : 0;
  if (limits.maxP99Ms !== null) {
    if (observed >= limits.minRequests && w.p99Ms !== null) {
      const breached = w.p99Ms > limits.maxP99Ms;
      out.push({ guard: 'p99-latency', value: w.p99Ms, limit: limits.maxP99Ms, baseline: null, events: observed, breached, text: `p99 request latency ${w.p99Ms.toFixed(0)} ms over ${observed} requests ${breached ? '>' : 'within'} limit ${limits.maxP99Ms} ms` });
    } else {
      out.push({ guard: 'p99-latency', value: null, limit: limits.maxP99Ms, baseline: null, events: observed, breached: false, text: `latency: ${observed} requests in the window (fewer than ${limits.minRequests}: not judged)` });
    }
  }
  return out;
}

/** The readings that breached. */
export function breaches(readings: GuardReading[]): GuardReading[] {
  return readings.filter((r) => r.breached);
}

/** One line for a set of readings: the judged ones, or how little traffic there was. */
export function summarizeReadings(readings: GuardReading[]): string {
  const judged = readings.filter((r) => r.value !== null || r.breached);
  if (judged.length) return judged.map((r) => r.text).join('; ');
  const events = (g: GuardName) => readings.find((r) => r.guard === g)?.events ?? 0;
  return `too little traffic to judge (${events('upgrade-failures')} Bifrost upgrades, ${events('request-errors')} requests)`;
}
