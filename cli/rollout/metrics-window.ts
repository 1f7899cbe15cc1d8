/**
 * What the ramp watches: the shim's `/metrics` (`bifrost_shim_upgrades_total`
 * by backend and outcome), every gateway's `/metrics`
 * (`bifrost_requests_total{protocol,service,status}`,
 * `bifrost_request_duration_seconds` histogram) and, for the Sync baseline,
 * Sync's `/__bifrost/metrics` (`sync_requests_total{status}`,
 * `sync_request_duration_seconds`). `MetricsSampler` scrapes them (gateway
 * URLs from `--gateway-url`, else the shim's node list; Sync's from
 * `--sync-metrics-url`, else the shim's Sync URL, else SYNC_PORT);
 * `MetricsWindow` turns a series of scrapes into what happened between the
 * first and the last one of each source (counter deltas; a counter that went
 * down means its process restarted, and its current value is the delta).
 * With several shim replicas (`--admin-url` repeated) each one's `/metrics`
 * is its own source (`shim@<url>`) and their deltas add up, like the
 * gateways'; the gateway list is the union of their node lists.
 */
import { FAILED_UPGRADE_OUTCOMES } from '../../proxy/upgrade-stats.ts';
import { parsePrometheusText, type Sample } from '../migration/prometheus-text.ts';
import { histogramQuantile, type CumulativeBucket } from './histogram-quantile.ts';
import { ShimAdminClient, currentReplicas, type ShimAdmins } from './shim-admin-client.ts';

/** One scrape of every source. `sources` maps `shim` or a gateway URL to its samples. */
export interface Scrape {
  at: number;
  sources: Map<string, Sample[]>;
  failures: { source: string; error: string }[];
  /** The Sync metrics URL scraped (or tried), when the Sync baseline is on. */
  syncMetricsUrl?: string;
  /** The gateway URLs scraped (or tried). */
  gateways?: string[];
  /** The shim's proxy mode (`proxied` | `direct`), when its admin API answered. */
  shimMode?: string;
}

export const SHIM_SOURCE = 'shim';

/**
 * The source name of one shim replica's metrics: `shim` for the one shim of a
 * single `--admin-url`, else `shim@<admin url>` (also when a `dns+` name
 * resolves to one address for a while: a replica keeps its name as others
 * come and go, so its counter deltas continue).
 */
export function shimSourceOf(url: string, single: boolean): string {
  return single ? SHIM_SOURCE : `${SHIM_SOURCE}@${url}`;
}

/** Whether a scrape source is a shim replica's metrics. */
export function isShimSource(source: string): boolean {
  return source === SHIM_SOURCE || source.startsWith(`${SHIM_SOURCE}@`);
}
/** The source name of Sync's metrics in a scrape. */
export const SYNC_SOURCE = 'sync';

/** Where Bifrost's endpoints live on Sync (the reference app's bridge hook serves metrics there). */
export const SYNC_METRICS_PATH = '/__bifrost/metrics';

/** Upgrade outcomes that count as failures (`aborted` is the client giving up); one definition with the shim's. */
export { FAILED_UPGRADE_OUTCOMES };

/** Sync's metrics URL when neither `--sync-metrics-url` nor the shim names Sync: `http://127.0.0.1:${SYNC_PORT || 1337}/__bifrost/metrics`. */
export function defaultSyncMetricsUrl(env: NodeJS.ProcessEnv = process.env): string {
  return `http://127.0.0.1:${env.SYNC_PORT || 1337}${SYNC_METRICS_PATH}`;
}

/** Sync's metrics URL from its base URL (as the shim's `syncUrl`). */
export function syncMetricsUrlOf(syncUrl: string): string {
  return `${syncUrl.replace(/\/+$/, '')}${SYNC_METRICS_PATH}`;
}

export interface BackendUpgrades {
  total: number;
  failed: number;
  byOutcome: Record<string, number>;
}

/** Requests and latency from one kind of source (the gateways, or Sync). */
export interface RequestFigures {
  total: number;
  errors: number;
  byStatus: Record<string, number>;
  latencyBuckets: CumulativeBucket[];
  p99Ms: number | null;
}

/** Sync's side of the window, for the baseline. */
export interface SyncBaseline extends RequestFigures {
  /** Whether Sync's metrics were seen at least twice (a delta exists). */
  measured: boolean;
  /** The URL scraped; null when the baseline is off. */
  url: string | null;
  /** Why the last scrape of Sync failed, if it did. */
  error: string | null;
}

export interface WindowSummary {
  durationMs: number;
  /** Whether the shim's metrics were seen at least twice (a delta exists). */
  shimMeasured: boolean;
  /** Gateways with a delta. */
  gatewaysMeasured: number;
  upgrades: { sync: BackendUpgrades; bifrost: BackendUpgrades };
  /**
   * Sockets the flag sent to Bifrost that the shim sent to Sync (or answered
   * 503) because no Bifrost node was usable (`bifrost_shim_fallbacks_total`),
   * by reason; and all of the shim's decisions for Bifrost (Godserver and
   * socket). `bifrost_shim_fallbacks_total` has no label
   * telling a Godserver-path fallback (direct mode) from a socket one, so the
   * guard divides by all Bifrost decisions.
   */
  fallbacks?: { total: number; byReason: Record<string, number> };
  bifrostDecisions?: number;
  /** Gateway URLs tried at least once during the window (`gatewaysMeasured` of them were read twice). */
  gatewaysTried?: string[];
  /** Why the gateways' last scrapes failed (URL: error). */
  gatewayFailures?: string[];
  /** The shim's proxy mode, when known. */
  shimMode?: string | null;
  requests: { total: number; errors: number; byStatus: Record<string, number> };
  latencyBuckets: CumulativeBucket[];
  p99Ms: number | null;
  /** Sync's requests and latency over the same window; absent when the Sync baseline is off. */
  sync?: SyncBaseline;
}

export interface SamplerOptions {
  /** The shim replica, or every replica. */
  admin?: ShimAdmins;
  /** Fixed gateway base URLs; unset = the shim's node list (every replica's, merged). */
  gatewayUrls?: string[];
  timeoutMs?: number;
  /**
   * The Sync baseline: scrape Sync's metrics too. `url` fixed, else the
   * shim's `syncUrl` + `/__bifrost/metrics`, else `fallbackUrl`. Unset: off.
   */
  sync?: { url?: string; fallbackUrl: string };
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
  /** Sync's URL as the shim's admin API last named it. */
  private shimSyncUrl: string | undefined;
  private shimMode: string | undefined;

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
    const replicas = this.opts.admin ? await currentReplicas(this.opts.admin) : [];
    const single = this.opts.admin instanceof ShimAdminClient;
    if (replicas.length) {
      const snaps = await Promise.allSettled(replicas.map((r) => r.rollout()));
      const nodes = new Set<string>();
      let answered = false;
      snaps.forEach((snap, i) => {
        if (snap.status === 'rejected') {
          failures.push({ source: single ? 'shim node list' : `shim node list at ${replicas[i]!.url}`, error: errText(snap.reason) });
          return;
        }
        for (const n of snap.value.connections.nodes) nodes.add(n.url.replace(/\/+$/, ''));
        if (answered) return;
        answered = true;
        if (snap.value.syncUrl) this.shimSyncUrl = snap.value.syncUrl;
        this.shimMode = snap.value.mode;
      });
      // A replica that did not answer keeps the nodes the last scrape knew: none is dropped for a blip.
      if (!this.opts.gatewayUrls && answered) this.knownGateways = snaps.every((x) => x.status === 'fulfilled') ? [...nodes] : [...new Set([...this.knownGateways, ...nodes])];
    }
    const syncMetricsUrl = this.syncMetricsUrl ?? undefined;
    const jobs: Promise<void>[] = [];
    for (const r of replicas) {
      const source = shimSourceOf(r.url, single);
      jobs.push(
        r.metricsText().then(
          (t) => void sources.set(source, parsePrometheusText(t)),
          (err) => void failures.push({ source, error: errText(err) }),
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
    if (syncMetricsUrl) {
      jobs.push(
        fetchText(syncMetricsUrl, this.timeoutMs).then(
          (t) => void sources.set(SYNC_SOURCE, parsePrometheusText(t)),
          (err) => void failures.push({ source: SYNC_SOURCE, error: errText(err) }),
        ),
      );
    }
    await Promise.all(jobs);
    return { at: Date.now(), sources, failures, gateways: [...this.knownGateways], ...(syncMetricsUrl ? { syncMetricsUrl } : {}), ...(this.shimMode ? { shimMode: this.shimMode } : {}) };
  }

  /** The Sync metrics URL the next scrape uses; null when the baseline is off. */
  get syncMetricsUrl(): string | null {
    const sync = this.opts.sync;
    if (!sync) return null;
    return sync.url ?? (this.shimSyncUrl ? syncMetricsUrlOf(this.shimSyncUrl) : sync.fallbackUrl);
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

/** Adds one source's request counter and latency bucket deltas to running figures. */
function addRequests(d: Sample[], names: { requests: string; buckets: string }, into: { total: number; errors: number; byStatus: Record<string, number> }, buckets: Map<number, number>): void {
  for (const s of d) {
    if (s.name === names.requests) {
      const status = s.labels.status ?? 'unknown';
      into.total += s.value;
      into.byStatus[status] = (into.byStatus[status] ?? 0) + s.value;
      if (isErrorStatus(status)) into.errors += s.value;
    } else if (s.name === names.buckets) {
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      if (!Number.isNaN(le)) buckets.set(le, (buckets.get(le) ?? 0) + s.value);
    }
  }
}

/** Sorted cumulative buckets and their p99 in ms. */
function latencyOf(buckets: Map<number, number>): { latencyBuckets: CumulativeBucket[]; p99Ms: number | null } {
  const latencyBuckets = [...buckets.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
  const p99 = histogramQuantile(0.99, latencyBuckets);
  return { latencyBuckets, p99Ms: p99 === null ? null : p99 * 1000 };
}

const GATEWAY_NAMES = { requests: 'bifrost_requests_total', buckets: 'bifrost_request_duration_seconds_bucket' };
const SYNC_NAMES = { requests: 'sync_requests_total', buckets: 'sync_request_duration_seconds_bucket' };

export class MetricsWindow {
  private readonly first = new Map<string, { at: number; samples: Sample[] }>();
  private readonly last = new Map<string, { at: number; samples: Sample[] }>();
  /** Scrapes added, and the most recent failures. */
  scrapes = 0;
  lastFailures: Scrape['failures'] = [];
  /** The Sync metrics URL of the last scrape that had one (the Sync baseline is on). */
  private syncMetricsUrl: string | null = null;
  private readonly gatewaysTried = new Set<string>();
  private readonly gatewayFailures = new Map<string, string>();
  private shimMode: string | null = null;

  add(scrape: Scrape): void {
    this.scrapes += 1;
    this.lastFailures = scrape.failures;
    if (scrape.syncMetricsUrl) this.syncMetricsUrl = scrape.syncMetricsUrl;
    if (scrape.shimMode) this.shimMode = scrape.shimMode;
    for (const g of scrape.gateways ?? []) {
      this.gatewaysTried.add(g);
      const failed = scrape.failures.find((f) => f.source === g);
      if (failed) this.gatewayFailures.set(g, failed.error);
      else this.gatewayFailures.delete(g);
    }
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
      fallbacks: { total: 0, byReason: {} },
      bifrostDecisions: 0,
      gatewaysTried: [...this.gatewaysTried],
      gatewayFailures: [...this.gatewayFailures].map(([url, error]) => `${url}: ${error}`),
      shimMode: this.shimMode,
      requests: { total: 0, errors: 0, byStatus: {} },
      latencyBuckets: [],
      p99Ms: null,
    };
    const fallbacks = out.fallbacks!;
    const buckets = new Map<number, number>();
    const sync = { total: 0, errors: 0, byStatus: {} as Record<string, number> };
    const syncBuckets = new Map<number, number>();
    let syncMeasured = false;
    for (const [source, first] of this.first) {
      const last = this.last.get(source)!;
      if (last === first) continue;
      out.durationMs = Math.max(out.durationMs, last.at - first.at);
      const d = deltas(first.samples, last.samples);
      if (isShimSource(source)) {
        out.shimMeasured = true;
        for (const s of d) {
          if (s.name === 'bifrost_shim_fallbacks_total') {
            const reason = s.labels.reason ?? 'unknown';
            fallbacks.total += s.value;
            fallbacks.byReason[reason] = (fallbacks.byReason[reason] ?? 0) + s.value;
            continue;
          }
          if (s.name === 'bifrost_shim_decisions_total') {
            if (s.labels.route === 'bifrost') out.bifrostDecisions = (out.bifrostDecisions ?? 0) + s.value;
            continue;
          }
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
      if (source === SYNC_SOURCE) {
        syncMeasured = true;
        addRequests(d, SYNC_NAMES, sync, syncBuckets);
        continue;
      }
      out.gatewaysMeasured += 1;
      addRequests(d, GATEWAY_NAMES, out.requests, buckets);
    }
    Object.assign(out, latencyOf(buckets));
    if (this.syncMetricsUrl || syncMeasured) {
      const failure = this.lastFailures.find((f) => f.source === SYNC_SOURCE);
      out.sync = { measured: syncMeasured, url: this.syncMetricsUrl, error: failure?.error ?? null, ...sync, ...latencyOf(syncBuckets) };
    }
    return out;
  }
}
