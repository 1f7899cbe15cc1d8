/**
 * What the dashboard shows, gathered in one place: `DashboardSampler` ticks
 * every `sampleIntervalMs` (default 2 s) and builds a `DashboardSnapshot`.
 *
 * Every tick (cheap, always — so the chart has 15 minutes of history the
 * moment someone opens the page):
 * - live connections per backend, from the shim's connection registry;
 * - the shim's counters (decisions, upgrades by backend and outcome, proxy
 *   errors, fallbacks) kept as a ring of samples covering `historyMs`; rates
 *   are deltas between samples: decisions/s over the last `rateShortMs`,
 *   error and fallback rates over the last `rateWindowMs`.
 *
 * Ticks while someone watches (an open event stream, or a snapshot request):
 * - every Bifrost node's `GET /load` (load factor, binding dimension, the
 *   dimensions, draining) next to what the shim's node pool knows;
 * - the ramp's persisted state and its guards' current values, measured the
 *   way the ramp runner measures them (cli/rollout's `MetricsWindow` +
 *   `evaluateGuards` over the shim's and gateways' `/metrics`) since the
 *   dashboard saw the current step begin;
 * - every squad's migration progress.
 * Nothing here writes anything.
 */
import type { Logger } from 'pino';
import { parsePrometheusText } from '../../cli/migration/prometheus-text.ts';
import { MetricsWindow, SHIM_SOURCE, FAILED_UPGRADE_OUTCOMES, type Scrape } from '../../cli/rollout/metrics-window.ts';
import { evaluateGuards, type GuardReading } from '../../cli/rollout/ramp-guards.ts';
import type { Sample } from '../../cli/migration/prometheus-text.ts';
import type { ConnectionRegistry, Rebalancer } from '../connections.ts';
import type { BifrostNodePool } from '../bifrost-nodes.ts';
import type { DecisionStats } from '../decision-stats.ts';
import type { FlagSource } from '../flag-source.ts';
import { flagSourceView, type FlagSourceView } from '../flag-source-view.ts';
import type { ShimMetrics } from '../metrics.ts';
import { rampView, type RampControl, type RampView } from './ramp-control.ts';
import type { SquadBoard, SquadBoardReader } from './squad-board.ts';

/** The parts of the shim the dashboard reads (a subset of the admin API's deps). */
export interface DashboardSources {
  log: Logger;
  flags: FlagSource;
  flagsFile: string | undefined;
  registry: ConnectionRegistry;
  rebalancer: Rebalancer;
  pool: BifrostNodePool;
  metrics: ShimMetrics;
  decisions: DecisionStats;
  mode: 'proxied' | 'direct';
}

export interface SamplerOptions {
  /** Default 2000 ms. */
  sampleIntervalMs?: number;
  /** History kept for the chart; default 15 minutes. */
  historyMs?: number;
  /** Window of the error and fallback rates; default 60 s. */
  rateWindowMs?: number;
  /** Window of decisions per second; default 10 s. */
  rateShortMs?: number;
  /** Timeout of one node `/load` or `/metrics` request; default 1000 ms. */
  fetchTimeoutMs?: number;
}

interface CounterSample {
  t: number;
  decisions: { sync: number; bifrost: number };
  /** Decisions that went to Sync for a reason other than the flag. */
  syncByFallback: number;
  upgrades: { sync: { total: number; failed: number }; bifrost: { total: number; failed: number } };
  proxyErrors: { sync: number; bifrost: number };
  fallbacks: number;
}

/** One point of the chart. */
export interface HistoryPoint {
  t: number;
  sync: number;
  bifrost: number;
  decisionsPerSecond: number | null;
}

export interface BackendHealth {
  /** Socket upgrades in the window (client aborts excluded). */
  upgrades: number;
  failedUpgrades: number;
  /** failedUpgrades / upgrades; null without upgrades in the window. */
  errorRate: number | null;
  proxyErrors: number;
  /** Sync: decisions sent to Sync because the flag could not decide (SDK not ready, bad route token...).
   *  Bifrost: sockets decided for Bifrost that found no usable node. */
  fallbacks: number;
  /** fallbacks over the backend's decisions (Sync) or Bifrost-decided sockets (Bifrost); null without traffic. */
  fallbackRate: number | null;
}

export interface NodeView {
  id: string;
  url: string;
  /** Connections the shim proxies to this node. */
  connections: number;
  /** Connections the node itself reports (all its clients), when its /load answered. */
  nodeConnections: number | null;
  loadFactor: number | null;
  binding: string | null;
  dimensions: Record<string, number> | null;
  draining: boolean;
  reachable: boolean | null;
}

export interface RampSection extends RampView {
  guards: GuardReading[];
  /** ms epoch since when the guards were measured (null: not running). */
  guardsSince: number | null;
  /**
   * Whose numbers the guards are: `ramp` = the running ramp's own readings
   * (what it decides on, with Sync as a baseline); `dashboard` = measured here
   * the same way, absolute limits only (no live ramp process has published
   * readings for this step); `outcome` = the breaches a finished ramp recorded.
   */
  guardsSource: 'ramp' | 'dashboard' | 'outcome';
  /** ms epoch of the ramp's readings (source `ramp`). */
  guardsAt: number | null;
}

export interface DashboardSnapshot {
  at: string;
  sampleIntervalMs: number;
  rollout: {
    source: 'file' | 'launchdarkly';
    mode: 'proxied' | 'direct';
    percent: number | null;
    bucketBy: string | null;
    version: number | null;
    flagsFile: string | null;
    drain: { policy: string; rate: number; queued: number; closed: number };
    flagReloads: { ok: number; errors: number; lastError: string | null };
    /** Whether the flags ever loaded (not ready: every user goes to Sync), and why not. */
    flagSource: FlagSourceView;
  };
  connections: { sync: number; bifrost: number; total: number; websocket: number; polling: number };
  decisions: { sync: number; bifrost: number; byReason: Record<string, number>; perSecond: { sync: number; bifrost: number; total: number } | null; windowMs: number };
  backends: { windowMs: number; sync: BackendHealth; bifrost: BackendHealth };
  nodes: NodeView[];
  ramp: RampSection | null;
  rampError: string | null;
  squads: SquadBoard | null;
  point: HistoryPoint;
}

interface LoadDoc {
  connections?: unknown;
  binding?: unknown;
  dimensions?: unknown;
  loadFactor?: unknown;
  draining?: unknown;
}

function sumValues(values: { value: number; labels: Record<string, string | number> }[], match: (l: Record<string, string | number>) => boolean): number {
  return values.filter((v) => match(v.labels)).reduce((a, v) => a + v.value, 0);
}

function diff(a: number, b: number): number {
  return b >= a ? b - a : b;
}

function firstLine(err: unknown): string {
  const e = err as Error & { cause?: Error };
  return String(e?.cause?.message ?? e?.message ?? err).split('\n')[0]!;
}

export class DashboardSampler {
  readonly sampleIntervalMs: number;
  readonly historyMs: number;
  readonly rateWindowMs: number;
  readonly rateShortMs: number;
  private readonly fetchTimeoutMs: number;
  private readonly counters: CounterSample[] = [];
  private readonly points: HistoryPoint[] = [];
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;
  private watchers = 0;
  private readonly listeners = new Set<(s: DashboardSnapshot) => void>();
  private latest: DashboardSnapshot | undefined;
  private lastHeavyAt = 0;
  private heavy: {
    nodes: Map<string, LoadDoc | null>;
    ramp: RampSection | null;
    rampError: string | null;
    squads: SquadBoard | null;
  } = { nodes: new Map(), ramp: null, rampError: null, squads: null };
  private guard: { key: string; since: number; window: MetricsWindow } | undefined;

  constructor(
    private readonly src: DashboardSources,
    private readonly ramp: RampControl,
    private readonly squads: SquadBoardReader,
    opts: SamplerOptions = {},
  ) {
    this.sampleIntervalMs = opts.sampleIntervalMs ?? 2000;
    this.historyMs = opts.historyMs ?? 15 * 60_000;
    this.rateWindowMs = opts.rateWindowMs ?? 60_000;
    this.rateShortMs = opts.rateShortMs ?? 10_000;
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? 1000;
    if (!(this.sampleIntervalMs > 0)) throw new Error(`sampleIntervalMs must be positive, got ${this.sampleIntervalMs}`);
  }

  /** Takes a first sample and starts ticking. */
  async start(): Promise<void> {
    await this.tick();
    if (this.closed) return;
    this.timer = setInterval(() => void this.tick(), this.sampleIntervalMs);
    this.timer.unref();
  }

  /** The chart's points, oldest first. */
  history(): HistoryPoint[] {
    return [...this.points];
  }

  /**
   * Subscribes to every new snapshot (an open event stream). While at least
   * one subscriber is there, ticks also read nodes, the ramp and the squads.
   */
  subscribe(listener: (s: DashboardSnapshot) => void): () => void {
    this.listeners.add(listener);
    this.watchers += 1;
    return () => {
      if (this.listeners.delete(listener)) this.watchers -= 1;
    };
  }

  /** A complete, fresh-enough snapshot (refreshes the watched parts if they are older than one interval). */
  async snapshot(): Promise<DashboardSnapshot> {
    // Twice at most: a light tick already in flight is awaited first, then a full one.
    for (let i = 0; i < 2 && (!this.latest || Date.now() - this.lastHeavyAt > this.sampleIntervalMs); i++) await this.tick(true);
    return this.latest!;
  }

  /** One sample; `forceHeavy` also reads nodes, ramp and squads without a subscriber. */
  tick(forceHeavy = false): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = this.runTick(forceHeavy || this.watchers > 0)
      .catch((err: unknown) => this.src.log.warn({ err: firstLine(err) }, 'dashboard sample failed'))
      .finally(() => {
        this.ticking = undefined;
      });
    return this.ticking;
  }

  private async runTick(withHeavy: boolean): Promise<void> {
    if (this.closed) return;
    const now = Date.now();
    const c = await this.readCounters(now);
    this.counters.push(c);
    while (this.counters.length > 2 && this.counters[0]!.t < now - this.historyMs) this.counters.shift();
    if (withHeavy) await this.readHeavy(now);
    if (this.closed) return;
    const snap = this.build(now);
    this.points.push(snap.point);
    while (this.points.length > 1 && this.points[0]!.t < now - this.historyMs) this.points.shift();
    this.latest = snap;
    for (const l of this.listeners) {
      try {
        l(snap);
      } catch (err) {
        this.src.log.warn({ err: firstLine(err) }, 'dashboard listener failed');
      }
    }
  }

  private async readCounters(t: number): Promise<CounterSample> {
    const m = this.src.metrics;
    const [up, pe, fb] = await Promise.all([m.upgrades.get(), m.proxyErrors.get(), m.fallbacks.get()]);
    const d = this.src.decisions.snapshot();
    let syncByFallback = 0;
    for (const [reason, n] of Object.entries(d.byReason)) if (reason !== 'flag') syncByFallback += n;
    const upgrades = (backend: string) => ({
      total: sumValues(up.values, (l) => l.backend === backend && l.outcome !== 'aborted'),
      failed: sumValues(up.values, (l) => l.backend === backend && FAILED_UPGRADE_OUTCOMES.has(String(l.outcome))),
    });
    return {
      t,
      decisions: { sync: d.sync, bifrost: d.bifrost },
      syncByFallback,
      upgrades: { sync: upgrades('sync'), bifrost: upgrades('bifrost') },
      proxyErrors: { sync: sumValues(pe.values, (l) => l.backend === 'sync'), bifrost: sumValues(pe.values, (l) => l.backend === 'bifrost') },
      fallbacks: sumValues(fb.values, () => true),
    };
  }

  /** The oldest kept sample at most `windowMs` old (or the oldest there is). */
  private baseline(now: number, windowMs: number): CounterSample | undefined {
    if (this.counters.length < 2) return undefined;
    const inWindow = this.counters.find((s) => s.t >= now - windowMs);
    const base = inWindow && inWindow !== this.counters[this.counters.length - 1] ? inWindow : this.counters[this.counters.length - 2];
    return base;
  }

  private async fetchJson(url: string): Promise<unknown> {
    const res = await fetch(url, { signal: AbortSignal.timeout(this.fetchTimeoutMs), headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`${res.status}`);
    return res.json();
  }

  private async fetchText(url: string): Promise<string> {
    const res = await fetch(url, { signal: AbortSignal.timeout(this.fetchTimeoutMs) });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    return res.text();
  }

  private async readHeavy(now: number): Promise<void> {
    this.lastHeavyAt = now;
    const nodes = this.src.pool.nodes;
    const [loads, rampRead, squads] = await Promise.all([
      Promise.all(
        nodes.map((n) =>
          this.fetchJson(`${n.url}/load`).then(
            (doc) => [n.url, doc && typeof doc === 'object' ? (doc as LoadDoc) : null] as const,
            () => [n.url, null] as const,
          ),
        ),
      ),
      this.ramp.read().then(
        (doc) => ({ doc, error: null as string | null }),
        (err: unknown) => ({ doc: null, error: firstLine(err) }),
      ),
      this.squads.read(new Date(now)),
    ]);
    this.heavy.nodes = new Map(loads);
    this.heavy.squads = squads;
    this.heavy.rampError = rampRead.error;
    const doc = rampRead.doc;
    if (!doc) {
      this.heavy.ramp = null;
      this.guard = undefined;
      return;
    }
    const view = rampView(doc, now);
    let guards: GuardReading[] = [];
    let since: number | null = null;
    const published = doc.readings;
    if (doc.phase === 'running' && view.ownerAlive && published && published.stepIndex === doc.stepIndex && published.guards.length > 0) {
      this.guard = undefined;
      this.heavy.ramp = { ...view, guards: published.guards, guardsSince: published.since, guardsSource: 'ramp', guardsAt: published.at };
      return;
    }
    if (doc.phase === 'running') {
      const key = `${doc.id}:${doc.stepIndex}`;
      if (!this.guard || this.guard.key !== key) this.guard = { key, since: now, window: new MetricsWindow() };
      this.guard.window.add(await this.scrape(now));
      guards = evaluateGuards(this.guard.window.summary(), { maxErrorRate: doc.plan.maxErrorRate, maxP99Ms: doc.plan.maxP99Ms, minRequests: doc.plan.minRequests });
      since = this.guard.since;
    } else {
      this.guard = undefined;
      guards = doc.breaches;
    }
    this.heavy.ramp = { ...view, guards, guardsSince: since, guardsSource: doc.phase === 'running' ? 'dashboard' : 'outcome', guardsAt: null };
  }

  /** The shim's own metrics plus every node's `/metrics`, as the ramp runner samples them. */
  private async scrape(at: number): Promise<Scrape> {
    const sources = new Map<string, Sample[]>();
    const failures: Scrape['failures'] = [];
    sources.set(SHIM_SOURCE, parsePrometheusText(await this.src.metrics.registry.metrics()));
    await Promise.all(
      this.src.pool.nodes.map((n) =>
        this.fetchText(`${n.url}/metrics`).then(
          (t) => void sources.set(n.url, parsePrometheusText(t)),
          (err: unknown) => void failures.push({ source: n.url, error: firstLine(err) }),
        ),
      ),
    );
    return { at, sources, failures };
  }

  private health(now: number): DashboardSnapshot['backends'] {
    const last = this.counters[this.counters.length - 1]!;
    const base = this.baseline(now, this.rateWindowMs);
    const empty = (): BackendHealth => ({ upgrades: 0, failedUpgrades: 0, errorRate: null, proxyErrors: 0, fallbacks: 0, fallbackRate: null });
    if (!base) return { windowMs: 0, sync: empty(), bifrost: empty() };
    const side = (b: 'sync' | 'bifrost'): BackendHealth => {
      const upgrades = diff(base.upgrades[b].total, last.upgrades[b].total);
      const failedUpgrades = diff(base.upgrades[b].failed, last.upgrades[b].failed);
      const proxyErrors = diff(base.proxyErrors[b], last.proxyErrors[b]);
      let fallbacks: number;
      let denominator: number;
      if (b === 'sync') {
        fallbacks = diff(base.syncByFallback, last.syncByFallback);
        denominator = diff(base.decisions.sync, last.decisions.sync);
      } else {
        fallbacks = diff(base.fallbacks, last.fallbacks);
        denominator = upgrades + fallbacks;
      }
      return {
        upgrades,
        failedUpgrades,
        errorRate: upgrades > 0 ? failedUpgrades / upgrades : null,
        proxyErrors,
        fallbacks,
        fallbackRate: denominator > 0 ? Math.min(1, fallbacks / denominator) : null,
      };
    };
    return { windowMs: last.t - base.t, sync: side('sync'), bifrost: side('bifrost') };
  }

  private build(now: number): DashboardSnapshot {
    const src = this.src;
    const r = src.flags.rollout();
    const stats = src.flags.stats();
    const counts = src.registry.counts();
    const d = src.decisions.snapshot();
    const last = this.counters[this.counters.length - 1]!;
    const short = this.baseline(now, this.rateShortMs);
    let perSecond: DashboardSnapshot['decisions']['perSecond'] = null;
    if (short && last.t > short.t) {
      const secs = (last.t - short.t) / 1000;
      const sync = diff(short.decisions.sync, last.decisions.sync) / secs;
      const bifrost = diff(short.decisions.bifrost, last.decisions.bifrost) / secs;
      perSecond = { sync, bifrost, total: sync + bifrost };
    }
    const nodes: NodeView[] = src.pool.nodes.map((n) => {
      const doc = this.heavy.nodes.get(n.url);
      const dims = doc && doc.dimensions && typeof doc.dimensions === 'object' ? (doc.dimensions as Record<string, number>) : null;
      return {
        id: n.id,
        url: n.url,
        connections: counts.nodes[n.id] ?? 0,
        nodeConnections: doc && typeof doc.connections === 'number' ? doc.connections : null,
        loadFactor: doc && typeof doc.loadFactor === 'number' ? doc.loadFactor : (n.loadFactor ?? null),
        binding: doc && typeof doc.binding === 'string' ? doc.binding : null,
        dimensions: dims,
        draining: doc && typeof doc.draining === 'boolean' ? doc.draining : n.draining,
        reachable: n.reachable ?? null,
      };
    });
    return {
      at: new Date(now).toISOString(),
      sampleIntervalMs: this.sampleIntervalMs,
      rollout: {
        source: src.flags.mode,
        mode: src.mode,
        percent: r ? r.percent : null,
        bucketBy: r ? r.bucketBy : null,
        version: r ? r.version : null,
        flagsFile: src.flags.mode === 'file' ? (src.flagsFile ?? null) : null,
        drain: { policy: src.rebalancer.policy, rate: src.rebalancer.rate, queued: src.rebalancer.queued, closed: src.rebalancer.closedCount },
        flagReloads: { ok: stats.reloads, errors: stats.reloadErrors, lastError: stats.lastReloadError ?? null },
        flagSource: flagSourceView(src.flags),
      },
      connections: { sync: counts.sync, bifrost: counts.bifrost, total: counts.sync + counts.bifrost, websocket: counts.websocket, polling: counts.polling },
      decisions: { sync: d.sync, bifrost: d.bifrost, byReason: d.byReason, perSecond, windowMs: short ? last.t - short.t : 0 },
      backends: this.health(now),
      nodes,
      ramp: this.heavy.ramp,
      rampError: this.heavy.rampError,
      squads: this.heavy.squads,
      point: { t: now, sync: counts.sync, bifrost: counts.bifrost, decisionsPerSecond: perSecond ? perSecond.total : null },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.listeners.clear();
    this.watchers = 0;
    await this.ticking;
  }
}
