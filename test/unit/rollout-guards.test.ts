/** The ramp's guards: p99 from histogram deltas, error rates, and Sync as a baseline. */
import { describe, expect, it } from 'vitest';
import { histogramQuantile } from '../../cli/rollout/histogram-quantile.ts';
import { MetricsWindow, SHIM_SOURCE, SYNC_SOURCE, defaultSyncMetricsUrl, isErrorStatus, syncMetricsUrlOf, type Scrape, type SyncBaseline, type WindowSummary } from '../../cli/rollout/metrics-window.ts';
import { breachesWithBaseline, evaluateGuards, requestBaseline, stepEndGuards, summarizeReadings } from '../../cli/rollout/ramp-guards.ts';
import { CliError } from '../../cli/output.ts';
import { LaunchDarklyError } from '../../cli/rollout/launchdarkly-rest.ts';
import { TransientError, isTransient, retrying } from '../../cli/rollout/retry.ts';
import { parsePrometheusText } from '../../cli/migration/prometheus-text.ts';

const GW = 'http://127.0.0.1:8080';

function gatewayText(o: { ok: number; serverError: number; upstream500: number; buckets: Record<string, number> }): string {
  const lines = [
    '# TYPE bifrost_requests_total counter',
    `bifrost_requests_total{protocol="native",service="sync",status="200",node="gw-1"} ${o.ok}`,
    `bifrost_requests_total{protocol="http",service="broken",status="serverError",node="gw-1"} ${o.serverError}`,
    `bifrost_requests_total{protocol="legacy",service="sync",status="500",node="gw-1"} ${o.upstream500}`,
    `bifrost_requests_total{protocol="legacy",service="sync",status="invalidPathError",node="gw-1"} 3`,
  ];
  for (const [le, c] of Object.entries(o.buckets)) lines.push(`bifrost_request_duration_seconds_bucket{le="${le}",protocol="native",service="sync",node="gw-1"} ${c}`);
  return lines.join('\n') + '\n';
}

function shimText(u: { bifrostOk: number; bifrostRefused: number; syncOk: number; syncError: number; aborted?: number }): string {
  return [
    `bifrost_shim_upgrades_total{backend="bifrost",outcome="ok"} ${u.bifrostOk}`,
    `bifrost_shim_upgrades_total{backend="bifrost",outcome="refused"} ${u.bifrostRefused}`,
    `bifrost_shim_upgrades_total{backend="bifrost",outcome="aborted"} ${u.aborted ?? 0}`,
    `bifrost_shim_upgrades_total{backend="sync",outcome="ok"} ${u.syncOk}`,
    `bifrost_shim_upgrades_total{backend="sync",outcome="error"} ${u.syncError}`,
  ].join('\n');
}

function scrape(at: number, shim: string | null, gateway: string | null): Scrape {
  const sources = new Map();
  if (shim !== null) sources.set(SHIM_SOURCE, parsePrometheusText(shim));
  if (gateway !== null) sources.set(GW, parsePrometheusText(gateway));
  return { at, sources, failures: [] };
}

describe('histogramQuantile', () => {
  it('interpolates inside the bucket that holds the rank, like PromQL', () => {
    const b = [
      { le: 0.1, count: 50 },
      { le: 0.2, count: 100 },
      { le: Infinity, count: 100 },
    ];
    expect(histogramQuantile(0.5, b)).toBeCloseTo(0.1);
    expect(histogramQuantile(0.99, b)).toBeCloseTo(0.198);
  });

  it('answers the highest finite bound when the rank is in +Inf, and null without observations', () => {
    expect(histogramQuantile(0.99, [{ le: 0.25, count: 1 }, { le: Infinity, count: 10 }])).toBe(0.25);
    expect(histogramQuantile(0.99, [{ le: 0.25, count: 0 }, { le: Infinity, count: 0 }])).toBeNull();
  });
});

describe('MetricsWindow', () => {
  it('sums counter deltas between the first and last scrape of each source', () => {
    const w = new MetricsWindow();
    w.add(scrape(0, shimText({ bifrostOk: 10, bifrostRefused: 0, syncOk: 100, syncError: 0 }), gatewayText({ ok: 100, serverError: 0, upstream500: 0, buckets: { '0.05': 90, '0.5': 100, '+Inf': 100 } })));
    w.add(scrape(1000, shimText({ bifrostOk: 16, bifrostRefused: 2, syncOk: 150, syncError: 1, aborted: 5 }), gatewayText({ ok: 190, serverError: 6, upstream500: 4, buckets: { '0.05': 180, '0.5': 200, '+Inf': 200 } })));
    const s = w.summary();
    expect(s.durationMs).toBe(1000);
    expect(s.shimMeasured).toBe(true);
    expect(s.gatewaysMeasured).toBe(1);
    expect(s.upgrades.bifrost).toMatchObject({ total: 8, failed: 2 }); // aborted is not counted
    expect(s.upgrades.sync).toMatchObject({ total: 51, failed: 1 });
    expect(s.requests).toMatchObject({ total: 100, errors: 10 });
    expect(s.latencyBuckets).toEqual([
      { le: 0.05, count: 90 },
      { le: 0.5, count: 100 },
      { le: Infinity, count: 100 },
    ]);
    expect(s.p99Ms).toBeCloseTo(455, 0);
  });

  it('treats a counter that went down as a restart (its value is the delta), and ignores a single scrape', () => {
    const w = new MetricsWindow();
    w.add(scrape(0, null, gatewayText({ ok: 500, serverError: 50, upstream500: 0, buckets: {} })));
    expect(w.summary().gatewaysMeasured).toBe(0);
    w.add(scrape(500, null, gatewayText({ ok: 20, serverError: 1, upstream500: 0, buckets: {} })));
    expect(w.summary().requests).toMatchObject({ total: 21, errors: 1 }); // 20 ok + 1 serverError; the unchanged 3 add nothing
  });

  it('counts 5xx, serverError and unavailable as errors, not client errors', () => {
    expect(['500', '502', 'serverError', 'unavailable'].every(isErrorStatus)).toBe(true);
    expect(['200', '404', 'invalidPathError', 'throttleError', 'forbiddenError'].some(isErrorStatus)).toBe(false);
  });
});

describe('evaluateGuards', () => {
  const limits = { maxErrorRate: 0.01, maxP99Ms: 250, minRequests: 20 };
  const base = (): WindowSummary => ({
    durationMs: 1000,
    shimMeasured: true,
    gatewaysMeasured: 1,
    upgrades: { sync: { total: 0, failed: 0, byOutcome: {} }, bifrost: { total: 0, failed: 0, byOutcome: {} } },
    requests: { total: 0, errors: 0, byStatus: {} },
    latencyBuckets: [] as { le: number; count: number }[],
    p99Ms: null as number | null,
  });

  it('breaches the request error rate with the numbers in the text', () => {
    const w = { ...base(), requests: { total: 200, errors: 25, byStatus: {} } };
    const r = evaluateGuards(w, limits).find((x) => x.guard === 'request-errors')!;
    expect(r.breached).toBe(true);
    expect(r.value).toBeCloseTo(0.125);
    expect(r.text).toBe('request error rate 12.5% (25 of 200 requests: 5xx/serverError) > limit 1.00%');
  });

  it('does not judge a window with fewer events than --min-requests', () => {
    const w = { ...base(), requests: { total: 5, errors: 5, byStatus: {} } };
    const readings = evaluateGuards(w, limits);
    expect(readings.some((x) => x.breached)).toBe(false);
    expect(summarizeReadings(readings)).toBe('too little traffic to judge (0 Bifrost upgrades, 5 requests)');
  });

  it('compares Bifrost upgrade failures with Sync as a baseline when both carry traffic', () => {
    const shared = { ...base(), upgrades: { bifrost: { total: 100, failed: 10, byOutcome: {} }, sync: { total: 100, failed: 9.5, byOutcome: {} } } };
    const same = evaluateGuards(shared, limits).find((x) => x.guard === 'upgrade-failures')!;
    expect(same.baseline).toBeCloseTo(0.095);
    expect(same.breached).toBe(false); // both paths fail alike: not Bifrost's doing

    const onlyBifrost = { ...base(), upgrades: { bifrost: { total: 100, failed: 10, byOutcome: {} }, sync: { total: 100, failed: 0, byOutcome: {} } } };
    const worse = evaluateGuards(onlyBifrost, limits).find((x) => x.guard === 'upgrade-failures')!;
    expect(worse.breached).toBe(true);
    expect(worse.text).toMatch(/Bifrost upgrade failures 10 of 100 \(10\.0%\) vs Sync 0 of 100 \(0\.00%\) > limit 1\.00% above Sync/);

    const noSync = { ...base(), upgrades: { bifrost: { total: 100, failed: 10, byOutcome: {} }, sync: { total: 3, failed: 0, byOutcome: {} } } };
    expect(evaluateGuards(noSync, limits).find((x) => x.guard === 'upgrade-failures')!).toMatchObject({ breached: true, baseline: null });
  });

  it('breaches p99 latency over the limit, and has no latency guard when the limit is null', () => {
    const slow = { ...base(), latencyBuckets: [{ le: 0.5, count: 100 }, { le: Infinity, count: 100 }], p99Ms: 495 };
    expect(evaluateGuards(slow, limits).find((x) => x.guard === 'p99-latency')).toMatchObject({ breached: true, value: 495, limit: 250 });
    expect(evaluateGuards(slow, { ...limits, maxP99Ms: null }).some((x) => x.guard === 'p99-latency')).toBe(false);
  });
});

function syncText(o: { ok: number; err500: number; notFound: number; buckets: Record<string, number> }): string {
  const lines = [
    '# TYPE sync_requests_total counter',
    `sync_requests_total{status="200"} ${o.ok}`,
    `sync_requests_total{status="500"} ${o.err500}`,
    `sync_requests_total{status="404"} ${o.notFound}`,
  ];
  for (const [le, c] of Object.entries(o.buckets)) lines.push(`sync_request_duration_seconds_bucket{le="${le}"} ${c}`);
  return lines.join('\n') + '\n';
}

describe('MetricsWindow with Sync as a baseline', () => {
  const URL_ = 'http://127.0.0.1:1337/__bifrost/metrics';
  const withSync = (at: number, text: string | null, error?: string): Scrape => {
    const s = scrape(at, null, gatewayText({ ok: at, serverError: 0, upstream500: 0, buckets: {} }));
    if (text !== null) s.sources.set(SYNC_SOURCE, parsePrometheusText(text));
    if (error) s.failures.push({ source: SYNC_SOURCE, error });
    return { ...s, syncMetricsUrl: URL_ };
  };

  it("reads Sync's requests, errors and p99 from its own counter and histogram deltas, apart from the gateways'", () => {
    const w = new MetricsWindow();
    w.add(withSync(0, syncText({ ok: 100, err500: 1, notFound: 5, buckets: { '0.05': 100, '0.5': 106, '+Inf': 106 } })));
    w.add(withSync(1000, syncText({ ok: 190, err500: 3, notFound: 13, buckets: { '0.05': 190, '0.5': 206, '+Inf': 206 } })));
    const s = w.summary();
    expect(s.gatewaysMeasured).toBe(1); // Sync is not a gateway
    expect(s.requests.total).toBe(1000); // the gateway's own delta only
    expect(s.sync).toMatchObject({ measured: true, url: URL_, error: null, total: 100, errors: 2, byStatus: { '200': 90, '500': 2, '404': 8 } });
    expect(s.sync!.p99Ms).toBeCloseTo(455, 0);
  });

  it('says why there is no Sync side: unreachable, or the baseline off', () => {
    const w = new MetricsWindow();
    w.add(withSync(0, null, 'connect ECONNREFUSED 127.0.0.1:1337'));
    w.add(withSync(1000, null, 'connect ECONNREFUSED 127.0.0.1:1337'));
    expect(w.summary().sync).toMatchObject({ measured: false, url: URL_, error: 'connect ECONNREFUSED 127.0.0.1:1337', total: 0 });
    const off = new MetricsWindow();
    off.add(scrape(0, null, gatewayText({ ok: 1, serverError: 0, upstream500: 0, buckets: {} })));
    off.add(scrape(1, null, gatewayText({ ok: 2, serverError: 0, upstream500: 0, buckets: {} })));
    expect(off.summary().sync).toBeUndefined();
  });

  it('derives the default Sync metrics URL from the shim or SYNC_PORT', () => {
    expect(syncMetricsUrlOf('http://127.0.0.1:4000/')).toBe('http://127.0.0.1:4000/__bifrost/metrics');
    expect(defaultSyncMetricsUrl({ SYNC_PORT: '4100' })).toBe('http://127.0.0.1:4100/__bifrost/metrics');
    expect(defaultSyncMetricsUrl({})).toBe('http://127.0.0.1:1337/__bifrost/metrics');
  });
});

describe('evaluateGuards with a Sync baseline (requests and p99)', () => {
  const limits = { maxErrorRate: 0.01, maxP99Ms: 250, minRequests: 20 };
  const sync = (o: Partial<SyncBaseline>): SyncBaseline => ({ measured: true, url: 'http://sync/__bifrost/metrics', error: null, total: 0, errors: 0, byStatus: {}, latencyBuckets: [], p99Ms: null, ...o });
  const win = (o: Partial<WindowSummary>): WindowSummary => ({
    durationMs: 1000,
    shimMeasured: true,
    gatewaysMeasured: 1,
    upgrades: { sync: { total: 0, failed: 0, byOutcome: {} }, bifrost: { total: 0, failed: 0, byOutcome: {} } },
    requests: { total: 200, errors: 10, byStatus: {} }, // 5.0%: over the 1% limit
    latencyBuckets: [{ le: 0.5, count: 200 }, { le: Infinity, count: 200 }],
    p99Ms: 400, // over 250 ms
    ...o,
  });
  const reading = (w: WindowSummary, g: string) => evaluateGuards(w, limits).find((x) => x.guard === g)!;
  const syncLatency = (p99Ms: number, count = 100) => ({ latencyBuckets: [{ le: 1, count }, { le: Infinity, count }], p99Ms });

  it('the rule: over the absolute limit AND worse than Sync; without a Sync figure the limit alone', () => {
    expect(breachesWithBaseline(0.05, 0.01, 0.02)).toBe(true);
    expect(breachesWithBaseline(0.05, 0.01, 0.05)).toBe(false); // not worse than Sync
    expect(breachesWithBaseline(0.05, 0.01, 0.08)).toBe(false);
    expect(breachesWithBaseline(0.005, 0.01, 0)).toBe(false); // under the limit, even if worse than Sync
    expect(breachesWithBaseline(0.05, 0.01, null)).toBe(true);
  });

  it('does not breach the error rate when Sync fails as much, and prints both numbers', () => {
    const r = reading(win({ sync: sync({ total: 100, errors: 6, ...syncLatency(100) }) }), 'request-errors');
    expect(r).toMatchObject({ breached: false, value: 0.05, baseline: 0.06 });
    expect(r.text).toBe("request error rate 5.00% (10 of 200 requests: 5xx/serverError) over limit 1.00% but not worse than Sync's 6.00%, 6 of 100 requests: within");
  });

  it("breaches the error rate when over the limit and worse than Sync, with Sync's figure in the message", () => {
    const r = reading(win({ sync: sync({ total: 400, errors: 4, ...syncLatency(100) }) }), 'request-errors');
    expect(r).toMatchObject({ breached: true, value: 0.05, baseline: 0.01 });
    expect(r.text).toBe("request error rate 5.00% (10 of 200 requests: 5xx/serverError) > limit 1.00% and > Sync's 1.00%, 4 of 400 requests");
  });

  it('judges p99 against Sync the same way', () => {
    const slowToo = reading(win({ sync: sync({ total: 100, errors: 0, ...syncLatency(600) }) }), 'p99-latency');
    expect(slowToo).toMatchObject({ breached: false, value: 400, baseline: 600 });
    expect(slowToo.text).toBe("p99 request latency 400 ms over 200 requests over limit 250 ms but not worse than Sync's 600 ms over 100 requests: within");
    const fastSync = reading(win({ sync: sync({ total: 100, errors: 0, ...syncLatency(40) }) }), 'p99-latency');
    expect(fastSync).toMatchObject({ breached: true, value: 400, baseline: 40 });
    expect(fastSync.text).toBe("p99 request latency 400 ms over 200 requests > limit 250 ms and > Sync's 40 ms over 100 requests");
  });

  it('applies the absolute limits alone when Sync carried fewer than --min-requests, and says so', () => {
    const w = win({ sync: sync({ total: 5, errors: 5, ...syncLatency(900, 5) }) });
    const e = reading(w, 'request-errors');
    expect(e).toMatchObject({ breached: true, baseline: null, baselineSkipped: 'no Sync baseline: Sync carried 5 requests (fewer than 20)' });
    expect(e.text).toBe('request error rate 5.00% (10 of 200 requests: 5xx/serverError) > limit 1.00% (no Sync baseline: Sync carried 5 requests (fewer than 20))');
    expect(reading(w, 'p99-latency')).toMatchObject({ breached: true, baseline: null });
  });

  it("skips the baseline when Sync's metrics are unreachable, and the message says so", () => {
    const w = win({ sync: sync({ measured: false, error: 'connect ECONNREFUSED 127.0.0.1:1337', url: 'http://127.0.0.1:1337/__bifrost/metrics' }) });
    expect(requestBaseline(w, 20)).toEqual({ skipped: 'no Sync baseline: Sync metrics unreachable at http://127.0.0.1:1337/__bifrost/metrics (connect ECONNREFUSED 127.0.0.1:1337)' });
    const e = reading(w, 'request-errors');
    expect(e.breached).toBe(true);
    expect(e.text).toMatch(/> limit 1\.00% \(no Sync baseline: Sync metrics unreachable at http:\/\/127\.0\.0\.1:1337\/__bifrost\/metrics/);
    expect(reading(w, 'p99-latency').text).toMatch(/> limit 250 ms \(no Sync baseline: Sync metrics unreachable/);
  });

  it('keeps a within reading within, with Sync shown, and is unchanged when the baseline is off', () => {
    const calm = reading(win({ requests: { total: 200, errors: 1, byStatus: {} }, sync: sync({ total: 100, errors: 0, ...syncLatency(100) }) }), 'request-errors');
    expect(calm).toMatchObject({ breached: false, baseline: 0 });
    expect(calm.text).toBe('request error rate 0.50% (1 of 200 requests: 5xx/serverError) within limit 1.00% (Sync 0.00%, 0 of 100 requests)');
    const off = reading(win({}), 'request-errors');
    expect(off).toMatchObject({ breached: true, baseline: null });
    expect(off.baselineSkipped).toBeUndefined();
    expect(off.text).toBe('request error rate 5.00% (10 of 200 requests: 5xx/serverError) > limit 1.00%');
  });
});

describe('guards that see a Bifrost that is down', () => {
  const limits = { maxErrorRate: 0.01, maxP99Ms: 250, minRequests: 20 };
  const byUser = { bucketBy: 'user' as const, minRequests: 20 };
  const scrape = (n: number, gw: 'ok' | 'down'): Scrape => ({
    at: n * 1000,
    sources: new Map([
      [
        SHIM_SOURCE,
        parsePrometheusText(
          [
            `bifrost_shim_decisions_total{route="bifrost",reason="flag",source="socket"} ${n * 3}`,
            `bifrost_shim_fallbacks_total{reason="no_eligible_node",action="sync"} ${n * 3}`,
            `bifrost_shim_upgrades_total{backend="sync",outcome="ok"} ${n * 6}`,
          ].join('\n'),
        ),
      ],
      ...(gw === 'ok' ? [['http://gw', parsePrometheusText('bifrost_requests_total{protocol="native",service="sync",status="200"} 0\n')] as [string, ReturnType<typeof parsePrometheusText>]] : []),
    ]),
    failures: gw === 'down' ? [{ source: 'http://gw', error: 'connect ECONNREFUSED 127.0.0.1:1' }] : [],
    gateways: ['http://gw'],
    shimMode: 'proxied',
  });

  it('counts fallbacks to Sync as a breach once there are --min-requests events (a dead Bifrost trips it)', () => {
    const w = new MetricsWindow();
    w.add(scrape(1, 'ok'));
    w.add(scrape(2, 'ok'));
    // 3 fallbacks among 3 decisions: below --min-requests 20, shown but not judged.
    const few = evaluateGuards(w.summary(), limits).find((x) => x.guard === 'bifrost-fallbacks')!;
    expect(few).toMatchObject({ breached: false, value: null, events: 3 });
    expect(few.text).toBe('3 fallback(s) to Sync or 503 among 3 Bifrost routing decisions (fewer than 20: not judged)');
    const r = evaluateGuards(w.summary(), { ...limits, minRequests: 3 }).find((x) => x.guard === 'bifrost-fallbacks')!;
    expect(r).toMatchObject({ breached: true, value: 1, events: 3 });
    expect(r.text).toBe('3 of 3 Bifrost routing decisions (Godserver and socket) fell back to Sync or 503 because no Bifrost node was usable (no_eligible_node ×3; 100.0%) > limit 1.00%');
    // The other guards had nothing to judge: before, that was a green step.
    expect(evaluateGuards(w.summary(), { ...limits, minRequests: 3 }).filter((x) => x.breached).map((x) => x.guard)).toEqual(['bifrost-fallbacks']);
  });

  it('does not breach on a single fallback, and divides by Godserver and socket decisions (the counter has no path label)', () => {
    const at = (n: number, godserver: number, socket: number, fallbacks: number): Scrape => ({
      at: n * 1000,
      sources: new Map([
        [
          SHIM_SOURCE,
          parsePrometheusText(
            [
              `bifrost_shim_decisions_total{route="bifrost",reason="flag",source="godserver"} ${godserver}`,
              `bifrost_shim_decisions_total{route="bifrost",reason="flag",source="socket"} ${socket}`,
              `bifrost_shim_decisions_total{route="sync",reason="flag",source="godserver"} ${godserver * 10}`,
              `bifrost_shim_fallbacks_total{reason="no_eligible_node",action="sync"} ${fallbacks}`,
            ].join('\n'),
          ),
        ],
      ]),
      failures: [],
      gateways: [],
      shimMode: 'direct',
    });
    const one = new MetricsWindow();
    one.add(at(1, 0, 0, 0));
    one.add(at(2, 1, 0, 1)); // direct mode: one Godserver-path fallback, no socket decision at all
    expect(evaluateGuards(one.summary(), limits).find((x) => x.guard === 'bifrost-fallbacks')).toMatchObject({ breached: false, value: null, events: 1 });
    const many = new MetricsWindow();
    many.add(at(1, 0, 0, 0));
    many.add(at(2, 100, 0, 30)); // 30 Godserver-path fallbacks of 100 Bifrost decisions: 30 %
    expect(evaluateGuards(many.summary(), limits).find((x) => x.guard === 'bifrost-fallbacks')).toMatchObject({ breached: true, value: 0.3, events: 100 });
    const rare = new MetricsWindow();
    rare.add(at(1, 0, 0, 0));
    rare.add(at(2, 1000, 1000, 1)); // 1 of 2000 decisions: within 1 %
    expect(evaluateGuards(rare.summary(), limits).find((x) => x.guard === 'bifrost-fallbacks')).toMatchObject({ breached: false, value: 0.0005, events: 2000 });
  });

  it('does not pass a step whose gateways could not be read, nor one where Bifrost saw nothing while Sync took the traffic', () => {
    const w = new MetricsWindow();
    w.add(scrape(1, 'down'));
    w.add(scrape(10, 'down'));
    const end = stepEndGuards(w.summary(), 50, w.lastFailures, byUser);
    expect(end.map((r) => r.guard)).toEqual(['gateway-metrics-unavailable', 'bifrost-no-traffic']);
    expect(end[0]!.text).toBe("no Bifrost gateway's /metrics could be read during the step (http://gw: connect ECONNREFUSED 127.0.0.1:1): request errors and p99 were not judged, so the step does not pass");
    expect(end[1]!.text).toMatch(/^Bifrost took no socket and no request during the step while Sync took 54 upgrades: at 50% about 54 should have reached Bifrost/);
    // At 1 % with 54 Sync upgrades about 0.5 were expected on Bifrost: seeing none is normal.
    expect(stepEndGuards(w.summary(), 1, w.lastFailures, byUser).map((r) => r.guard)).toEqual(['gateway-metrics-unavailable']);
    // At 25 % about 18 were expected: below the floor of 20, not judged.
    expect(stepEndGuards(w.summary(), 25, w.lastFailures, byUser).map((r) => r.guard)).toEqual(['gateway-metrics-unavailable']);
    // Nor above a larger --min-requests.
    expect(stepEndGuards(w.summary(), 50, w.lastFailures, { bucketBy: 'user', minRequests: 100 }).map((r) => r.guard)).toEqual(['gateway-metrics-unavailable']);
    // Bucketing by team: upgrades say nothing about how many teams should be on Bifrost.
    expect(stepEndGuards(w.summary(), 50, w.lastFailures, { bucketBy: 'team', minRequests: 20 }).map((r) => r.guard)).toEqual(['gateway-metrics-unavailable']);
    // Gateways read, Bifrost seen: the step passes.
    const ok = new MetricsWindow();
    ok.add(scrape(1, 'ok'));
    ok.add({ ...scrape(2, 'ok'), sources: new Map([...scrape(2, 'ok').sources, [SHIM_SOURCE, parsePrometheusText('bifrost_shim_upgrades_total{backend="bifrost",outcome="ok"} 5\nbifrost_shim_upgrades_total{backend="sync",outcome="ok"} 12\n')]]) });
    expect(stepEndGuards(ok.summary(), 50, ok.lastFailures, byUser)).toEqual([]);
  });
});

describe('what is retried', () => {
  it('retries transient failures, not configuration errors', () => {
    expect(isTransient(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isTransient(new Error('Connection is closed.'))).toBe(true);
    expect(isTransient(new TransientError('could not lock'))).toBe(true);
    expect(isTransient(new CliError('corrupt', 2))).toBe(false);
    expect(isTransient(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }))).toBe(false);
    expect(isTransient(new LaunchDarklyError('401', 401, 2))).toBe(false); // and the client already retried its 5xx
  });

  it('starts no attempt after forMs: each wait is cut to the time left', async () => {
    const starts: number[] = [];
    const t0 = Date.now();
    const err = await retrying(
      'a blip',
      async () => {
        starts.push(Date.now() - t0);
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
      { forMs: 500, minWaitMs: 200, maxWaitMs: 10_000 },
    ).catch((e: Error) => e);
    expect((err as Error).message).toBe('connect ECONNREFUSED');
    expect(starts.length).toBeGreaterThanOrEqual(2);
    for (const at of starts) expect(at).toBeLessThan(500 + 25);
    expect(Date.now() - t0).toBeLessThan(500 + 100);
  });
});
