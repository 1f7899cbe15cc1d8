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
 * Requests and latency have Sync as a baseline when Sync's metrics were read
 * (`sync_requests_total`, `sync_request_duration_seconds`, see
 * `requestBaseline`) and Sync carried at least `minRequests` requests in the
 * window: a breach then needs BOTH the absolute limit exceeded AND Bifrost
 * worse than Sync (a higher error rate; a higher p99). Without Sync traffic,
 * or when Sync's metrics cannot be read (the reading says why), the absolute
 * limit alone applies.
 *
 * A rate needs at least `minRequests` events in the window before it can
 * breach, so one unlucky request at a 1% step does not roll back a ramp.
 */
import type { WindowSummary } from './metrics-window.ts';

/**
 * `metrics-unavailable`: no source could be read during a whole step (the ramp never moves blind).
 * `bifrost-fallbacks`: clients the flag sent to Bifrost went to Sync (or got a 503) because no Bifrost node was usable.
 * `gateway-metrics-unavailable`, `bifrost-no-traffic`: judged when a step ends (`stepEndGuards`).
 * `flag-not-applied`: the shim answered but did not apply the step's percentage (the runner checks it).
 */
export type GuardName =
  | 'upgrade-failures'
  | 'request-errors'
  | 'p99-latency'
  | 'bifrost-fallbacks'
  | 'metrics-unavailable'
  | 'gateway-metrics-unavailable'
  | 'bifrost-no-traffic'
  | 'flag-not-applied';

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
  /** Why a guard that can have a Sync baseline judged without one (set when the Bifrost side was judged). */
  baselineSkipped?: string;
  /** Events the value is computed from. */
  events: number;
  breached: boolean;
  /** One human line with the numbers. */
  text: string;
}

const pct = (r: number): string => `${(r * 100).toFixed(r > 0 && r < 0.001 ? 3 : r < 0.1 ? 2 : 1)}%`;

/** Sync's request figures usable as a baseline, or why there are none (null: the baseline is off). */
export type RequestBaseline = { errorRate: number; errors: number; total: number; p99Ms: number | null; observed: number } | { skipped: string } | null;

/** Sync's side of the window as a baseline: it needs Sync's metrics read twice and at least `minRequests` Sync requests. */
export function requestBaseline(w: WindowSummary, minRequests: number): RequestBaseline {
  const s = w.sync;
  if (!s) return null;
  if (!s.measured) {
    if (s.error) return { skipped: `no Sync baseline: Sync metrics unreachable at ${s.url ?? '?'} (${s.error})` };
    return { skipped: 'no Sync baseline: Sync metrics not read twice yet' };
  }
  if (s.total < minRequests || s.total === 0) return { skipped: `no Sync baseline: Sync carried ${s.total} requests (fewer than ${minRequests})` };
  const observed = s.latencyBuckets.length ? s.latencyBuckets[s.latencyBuckets.length - 1]!.count : 0;
  return { errorRate: s.errors / s.total, errors: s.errors, total: s.total, p99Ms: observed >= minRequests ? s.p99Ms : null, observed };
}

/**
 * The rule for a figure with an optional Sync baseline: over the absolute
 * limit, and (when Sync's figure exists) worse than Sync's.
 */
export function breachesWithBaseline(value: number, limit: number, baseline: number | null): boolean {
  return value > limit && (baseline === null || value > baseline);
}

/** `> limit X and > Sync's Y`, `over limit X but not worse than Sync's Y: within`, `within limit X`. */
function verdict(value: number, limit: number, baseline: number | null, fmt: (v: number) => string, syncDetail: string): string {
  if (baseline === null) return `${value > limit ? '>' : 'within'} limit ${fmt(limit)}`;
  if (value <= limit) return `within limit ${fmt(limit)} (Sync ${fmt(baseline)}${syncDetail})`;
  if (value > baseline) return `> limit ${fmt(limit)} and > Sync's ${fmt(baseline)}${syncDetail}`;
  return `over limit ${fmt(limit)} but not worse than Sync's ${fmt(baseline)}${syncDetail}: within`;
}

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

  // Fallbacks: a client routed to Bifrost that the shim could not send to any Bifrost node (on a socket,
  // or on the Godserver path in direct mode). Sync took it (or the client got a 503), so the upgrade guard
  // never sees it as Bifrost's. `bifrost_shim_fallbacks_total` has no label telling the two paths apart,
  // so the rate is over ALL Bifrost decisions (Godserver and socket). Like the other rates it is judged
  // only over at least --min-requests events (decisions, or the fallbacks themselves: a dead Bifrost
  // still trips it once it has turned away --min-requests clients); fewer fallbacks are shown, not
  // judged (`bifrost-no-traffic` covers a Bifrost that took nothing at all).
  const fb = w.fallbacks ?? { total: 0, byReason: {} };
  const decided = w.bifrostDecisions ?? 0;
  const of = Math.max(decided, fb.total);
  if (fb.total > 0 && of < limits.minRequests) {
    out.push({ guard: 'bifrost-fallbacks', value: null, limit: limits.maxErrorRate, baseline: null, events: of, breached: false, text: `${fb.total} fallback(s) to Sync or 503 among ${of} Bifrost routing decisions (fewer than ${limits.minRequests}: not judged)` });
  } else if (fb.total > 0) {
    const rate = fb.total / of;
    const breached = rate > limits.maxErrorRate;
    const why = Object.entries(fb.byReason)
      .map(([reason, n]) => `${reason} ×${n}`)
      .join(', ');
    out.push({
      guard: 'bifrost-fallbacks',
      value: rate,
      limit: limits.maxErrorRate,
      baseline: null,
      events: of,
      breached,
      text: `${fb.total} of ${of} Bifrost routing decisions (Godserver and socket) fell back to Sync or 503 because no Bifrost node was usable (${why}; ${pct(rate)}) ${breached ? '>' : 'within'} limit ${pct(limits.maxErrorRate)}`,
    });
  } else {
    out.push({ guard: 'bifrost-fallbacks', value: decided > 0 ? 0 : null, limit: limits.maxErrorRate, baseline: null, events: decided, breached: false, text: `no fallbacks (${decided} Bifrost routing decisions)` });
  }

  const sb = requestBaseline(w, limits.minRequests);
  const skipped = sb && 'skipped' in sb ? sb.skipped : undefined;
  const note = skipped ? ` (${skipped})` : '';
  const r = w.requests;
  if (r.total >= limits.minRequests && r.total > 0) {
    const rate = r.errors / r.total;
    const baseline = sb && 'errorRate' in sb ? sb.errorRate : null;
    const breached = breachesWithBaseline(rate, limits.maxErrorRate, baseline);
    const syncDetail = sb && 'errorRate' in sb ? `, ${sb.errors} of ${sb.total} requests` : '';
    out.push({
      guard: 'request-errors',
      value: rate,
      limit: limits.maxErrorRate,
      baseline,
      ...(skipped ? { baselineSkipped: skipped } : {}),
      events: r.total,
      breached,
      text: `request error rate ${pct(rate)} (${r.errors} of ${r.total} requests: 5xx/serverError) ${verdict(rate, limits.maxErrorRate, baseline, pct, syncDetail)}${note}`,
    });
  } else {
    out.push({ guard: 'request-errors', value: null, limit: limits.maxErrorRate, baseline: null, events: r.total, breached: false, text: `requests: ${r.total} in the window (fewer than ${limits.minRequests}: not judged)` });
  }

  const observed = w.latencyBuckets.length ? w.latencyBuckets[w.latencyBuckets.length - 1]!.count : 0;
  if (limits.maxP99Ms !== null) {
    if (observed >= limits.minRequests && w.p99Ms !== null) {
      const baseline = sb && 'errorRate' in sb ? sb.p99Ms : null;
      const breached = breachesWithBaseline(w.p99Ms, limits.maxP99Ms, baseline);
      const ms = (v: number) => `${v.toFixed(0)} ms`;
      const syncDetail = sb && 'errorRate' in sb ? ` over ${sb.observed} requests` : '';
      const why = skipped ?? (sb && 'errorRate' in sb && baseline === null ? `no Sync baseline: Sync latency over ${sb.observed} requests (fewer than ${limits.minRequests})` : undefined);
      out.push({
        guard: 'p99-latency',
        value: w.p99Ms,
        limit: limits.maxP99Ms,
        baseline,
        ...(why ? { baselineSkipped: why } : {}),
        events: observed,
        breached,
        text: `p99 request latency ${w.p99Ms.toFixed(0)} ms over ${observed} requests ${verdict(w.p99Ms, limits.maxP99Ms, baseline, ms, syncDetail)}${why ? ` (${why})` : ''}`,
      });
    } else {
      out.push({ guard: 'p99-latency', value: null, limit: limits.maxP99Ms, baseline: null, events: observed, breached: false, text: `latency: ${observed} requests in the window (fewer than ${limits.minRequests}: not judged)` });
    }
  }
  return out;
}

/**
 * Below this many expected Bifrost upgrades (or --min-requests, whichever is
 * larger), seeing none is not judged (at 1 % with 400 Sync upgrades, 0 Bifrost
 * happens).
 */
export const NO_TRAFFIC_EXPECTED_MIN = 20;

/**
 * What a step must show before the ramp moves past it, judged on the whole
 * step's window once its time is up (the ramp never advances blind):
 *
 * - `metrics-unavailable`: no source at all could be read;
 * - `gateway-metrics-unavailable`: there are Bifrost gateways to watch (the
 *   shim's node list or --gateway-url) but none of their /metrics could be
 *   read twice during the step — request errors and p99 were never judged;
 *   or, at a percentage above 0, there is no gateway to watch at all;
 * - `bifrost-no-traffic` (shim in proxied mode, bucketing by user): Bifrost
 *   took no socket and no request during the step while Sync took enough
 *   upgrades that, at this percentage, at least NO_TRAFFIC_EXPECTED_MIN (or
 *   --min-requests, if larger) should have reached Bifrost (expected = Sync
 *   upgrades × p / (100 − p); any Sync upgrade at 100 %). The estimate counts
 *   upgrades but the flag buckets users: it holds only when each user brings
 *   about as many upgrades, so it is not judged when bucketing by team (a few
 *   teams carry most of the traffic) — nor below that floor, where a few heavy
 *   users on Sync make "none on Bifrost" plausible.
 *
 * Each is a breach: the step rolls back with the reason.
 */
export function stepEndGuards(w: WindowSummary, percent: number, failures: { source: string; error: string }[], o: { bucketBy: 'user' | 'team'; minRequests: number }): GuardReading[] {
  const out: GuardReading[] = [];
  if (!w.shimMeasured && w.gatewaysMeasured === 0) {
    const why = failures.map((f) => `${f.source}: ${f.error}`).join('; ') || 'no metrics sources';
    return [{ guard: 'metrics-unavailable', value: null, limit: null, baseline: null, events: 0, breached: true, text: `no metrics could be read during the step (${why})` }];
  }
  const tried = w.gatewaysTried ?? [];
  if (w.gatewaysMeasured === 0 && (tried.length > 0 || percent > 0)) {
    const text =
      tried.length > 0
        ? `no Bifrost gateway's /metrics could be read during the step (${(w.gatewayFailures ?? []).join('; ') || tried.join(', ')}): request errors and p99 were not judged, so the step does not pass`
        : `no Bifrost gateway to watch at ${percent}% (the shim lists no node and no --gateway-url was given): request errors and p99 cannot be judged`;
    out.push({ guard: 'gateway-metrics-unavailable', value: null, limit: null, baseline: null, events: 0, breached: true, text });
  }
  const b = w.upgrades.bifrost;
  const bifrostSeen = Object.values(b.byOutcome).reduce((a, n) => a + n, 0) + w.requests.total;
  const syncUpgrades = w.upgrades.sync.total;
  if (w.shimMeasured && w.shimMode !== 'direct' && o.bucketBy === 'user' && percent > 0 && bifrostSeen === 0 && syncUpgrades > 0) {
    const expected = percent >= 100 ? Infinity : (syncUpgrades * percent) / (100 - percent);
    if (expected >= Math.max(NO_TRAFFIC_EXPECTED_MIN, o.minRequests)) {
      out.push({
        guard: 'bifrost-no-traffic',
        value: 0,
        limit: null,
        baseline: null,
        events: syncUpgrades,
        breached: true,
        text: `Bifrost took no socket and no request during the step while Sync took ${syncUpgrades} upgrades: at ${percent}% ${Number.isFinite(expected) ? `about ${Math.round(expected)}` : 'all of them'} should have reached Bifrost (is the shim applying the flag? are Bifrost's nodes usable?)`,
      });
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
