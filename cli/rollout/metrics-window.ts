/**
 * What the ramp watches: the shim's `/metrics` (`bifrost_shim_upgrades_total`
 * by backend and outcome) and every gateway's `/metrics`
 * (`bifrost_requests_total{protocol,service,status}`,
 * `bifrost_request_duration_seconds` histogram). `MetricsSampler` scrapes them
 * (gateway URLs from `--gateway-url`, else the shim's node list);
 * `MetricsWindow` turns a series of scrapes into what happened between the
 * first and the last one of each source (counter deltas; a counter that went
 * down means its process restarted, and its current value is the delta).
 */
import { parsePrometheusText, type Sample } from '../migration/prometheus-text.ts';
import { histogramQuantile, type CumulativeBucket } from './histogram-quantile.ts';
import type { ShimAdminClient } from './shim-admin-client.ts';

/** One scrape of every source. `sources` maps `shim` or a gateway URL to its samples. */
export interface Scrape {
  at: number;
  sources: Map<string, Sample[]>;
  failures: { source: string; error: string }[];
}

export const SHIM_SOURCE = 'shim';

/** Upgrade outcomes that count as failures (`aborted` is the client giving up). */
export const FAILED_UPGRADE_OUTCOMES = new Set(['rejected', 'refused', 'error', 'unavailable']);

export interface BackendUpgrades {
  total: number;
  failed: number;
  byOutcome: Record<string, number>;
}

export interface WindowSummary {
  durationMs: number;
  /** Whether the shim's metrics were seen at least twice (a delta exists). */
  shimMeasured: boolean;
  /** Gateways with a delta. */
  gatewaysMeasured: number;
  upgrades: { sync: BackendUpgrades; bifrost: BackendUpgrades };
  requests: { total: number; errors: number; byStatus: Record<string, number> };
  latencyBuckets: CumulativeBucket[];
  p99Ms: number | null;
}

export interface SamplerOptions {
  admin?: ShimAdminClient;
  /** Fixed gateway base URLs; unset = the shim's node list. */
  gatewayUrls?: string[];
  timeoutMs?: number;
}

async function fetchText(url: string, timeoutMs: number): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
  return res.text();
}

function errText(err: unknown): string {
  const e = err as Error & { cause?: Error };
  return e.cause?.message ?? e.message ?? String(err);
}

export class MetricsSampler {
  private readonly timeoutMs: number;
  private knownGateways: string[] = [];

  constructor(private readonly opts: SamplerOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.knownGateways = opts.gatewayUrls ? [...opts.gatewayUrls] : [];
  }

  /** The gateway URLs scraped last. */
  get gateways(): string[] {
    return [...this.knownGateways];
  }

  async scrape(): Promise<Scrape> {
    const sources = new Map<string, Sample[]>();
    const failures: Scrape['failures'] = [];
    const { admin } = this.opts;
    if (!this.opts.gatewayUrls && admin) {
      try {
        const snap = await admin.rollout();
        this.knownGateways = snap.connections.nodes.map((n) => n.url.replace(/\/+$/, ''));
      } catch (err) {
        failures.push({ source: 'shim node list', error: errText(err) });
      }
    }
    const jobs: Promise<void>[] = [];
    if (admin) {
      jobs.push(
        admin.metricsText().then(
          (t) => void sources.set(SHIM_SOURCE, parsePrometheusText(t)),
          (err) => void failures.push({ source: SHIM_SOURCE, error: errText(err) }),
        ),
      );
    }
    for (const url of this.knownGateways) {
      jobs.push(
        fetchText(`${url}/metrics`, this.timeoutMs).then(
          (t) => void sources.set(url, parsePrometheusText(t)),
          (err) => void failures.push({ source: url, error: errText(err) }),
        ),
      );
    }
    await Promise.all(jobs);
    return { at: Date.now(), sources, failures };
  }
}

function seriesKey(s: Sample): string {
  const labels = Object.keys(s.labels)
    .sort()
    .map((k) => `${k}=${s.labels[k]}`)
    .join(',');
  return `${s.name}{${labels}}`;
}

/** Counter deltas between two scrapes of one source. */
function deltas(first: Sample[], last: Sample[]): Sample[] {
  const base = new Map(first.map((s) => [seriesKey(s), s.value]));
  return last.map((s) => {
    const b = base.get(seriesKey(s)) ?? 0;
    return { ...s, value: s.value >= b ? s.value - b : s.value };
  });
}

function emptyUpgrades(): BackendUpgrades {
  return { total: 0, failed: 0, byOutcome: {} };
}

/** A request status that counts as an error: an HTTP 5xx, or the gateway's serverError / unavailable. */
export function isErrorStatus(status: string): boolean {
  return /^5\d\d$/.test(status) || status === 'serverError' || status === 'unavailable';
}

export class MetricsWindow {
  private readonly first = new Map<string, { at: number; samples: Sample[] }>();
  private readonly last = new Map<string, { at: number; samples: Sample[] }>();
  /** Scrapes added, and the most recent failures. */
  scrapes = 0;
  lastFailures: Scrape['failures'] = [];

  add(scrape: Scrape): void {
    this.scrapes += 1;
    this.lastFailures = scrape.failures;
    for (const [source, samples] of scrape.sources) {
      const entry = { at: scrape.at, samples };
      if (!this.first.has(source)) this.first.set(source, entry);
      this.last.set(source, entry);
    }
  }

  summary(): WindowSummary {
    const out: WindowSummary = {
      durationMs: 0,
      shimMeasured: false,
      gatewaysMeasured: 0,
      upgrades: { sync: emptyUpgrades(), bifrost: emptyUpgrades() },
      requests: { total: 0, errors: 0, byStatus: {} },
      latencyBuckets: [],
      p99Ms: null,
    };
    const buckets = new Map<number, number>();
    for (const [source, first] of this.first) {
      const last = this.last.get(source)!;
      if (last === first) continue;
      out.durationMs = Math.max(out.durationMs, last.at - first.at);
      const d = deltas(first.samples, last.samples);
      if (source === SHIM_SOURCE) {
        out.shimMeasured = true;
        for (const s of d) {
          if (s.name !== 'bifrost_shim_upgrades_total') continue;
          const backend = s.labels.backend === 'bifrost' ? 'bifrost' : s.labels.backend === 'sync' ? 'sync' : undefined;
          if (!backend) continue;
          const outcome = s.labels.outcome ?? 'unknown';
          const u = out.upgrades[backend];
          u.byOutcome[outcome] = (u.byOutcome[outcome] ?? 0) + s.value;
          if (outcome === 'aborted') continue;
          u.total += s.value;
          if (FAILED_UPGRADE_OUTCOMES.has(outcome)) u.failed += s.value;
        }
        continue;
      }
      out.gatewaysMeasured += 1;
      for (const s of d) {
        if (s.name === 'bifrost_requests_total') {
          const status = s.labels.status ?? 'unknown';
          out.requests.total += s.value;
          out.requests.byStatus[status] = (out.requests.byStatus[status] ?? 0) + s.value;
          if (isErrorStatus(status)) out.requests.errors += s.value;
        } else if (s.name === 'bifrost_request_duration_seconds_bucket') {
          const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
          if (!Number.isNaN(le)) buckets.set(le, (buckets.get(le) ?? 0) + s.value);
        }
      }
    }
    out.latencyBuckets = [...buckets.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
    const p99 = histogramQuantile(0.99, out.latencyBuckets);
    out.p99Ms = p99 === null ? null : p99 * 1000;
    return out;
  }
}
