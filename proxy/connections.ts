/**
 * Live connections the shim is proxying, and the rebalancer that closes those
 * whose routing decision changed, at a bounded rate, so the unchanged client's
 * own reconnect logic brings it back through the shim onto its new backend.
 */
import type { Logger } from 'pino';
import type { Route } from './flags-file.ts';
import type { FlagSource } from './flag-source.ts';
import type { ShimMetrics } from './metrics.ts';

export interface LiveConnection {
  readonly id: string;
  readonly transport: 'websocket' | 'polling';
  readonly backend: Route;
  /** The Bifrost node id, for backend "bifrost". */
  readonly node?: string;
  /** Known when the socket came with a valid route token; otherwise never rebalanced. */
  readonly userId?: string;
  readonly teamId?: string;
  readonly sid?: string;
  readonly openedAt: number;
  /** Ends the connection (both sides). */
  close(reason: string): void;
}

export class ConnectionRegistry {
  private readonly byId = new Map<string, LiveConnection>();

  constructor(private readonly metrics: ShimMetrics) {}

  add(c: LiveConnection): void {
    if (this.byId.has(c.id)) return;
    this.byId.set(c.id, c);
    this.metrics.liveConnections.inc({ backend: c.backend, node: c.node ?? '' });
  }

  remove(id: string): void {
    const c = this.byId.get(id);
    if (!c) return;
    this.byId.delete(id);
    this.metrics.liveConnections.dec({ backend: c.backend, node: c.node ?? '' });
  }

  get(id: string): LiveConnection | undefined {
    return this.byId.get(id);
  }

  all(): LiveConnection[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  /** Live connections per backend and per Bifrost node. */
  counts(): { sync: number; bifrost: number; nodes: Record<string, number>; websocket: number; polling: number } {
    const out = { sync: 0, bifrost: 0, nodes: {} as Record<string, number>, websocket: 0, polling: 0 };
    for (const c of this.byId.values()) {
      out[c.backend] += 1;
      out[c.transport] += 1;
      if (c.node) out.nodes[c.node] = (out.nodes[c.node] ?? 0) + 1;
    }
    return out;
  }
}

export type DrainPolicy = 'close' | 'keep';

export interface DrainRequest {
  /** `changed` (default): only connections whose decision changed; `all`: every matching connection. */
  scope?: 'changed' | 'all';
  backend?: Route;
  node?: string;
}

export interface RebalancerOptions {
  registry: ConnectionRegistry;
  flags: FlagSource;
  metrics: ShimMetrics;
  log: Logger;
  /** Closes per second (default 100). */
  rate?: number;
  /** What a flag change does to live sockets: `close` (default) or `keep`. */
  drain?: DrainPolicy;
  random?: () => number;
}

/**
 * Closes connections at `rate` per second with jitter (each gap is uniformly
 * 0.5×–1.5× of 1/rate), so reconnects do not arrive as one burst. A connection
 * is re-evaluated right before it is closed: if the flag moved back meanwhile,
 * it is left alone. Evaluation errors never move anyone (an SDK outage must not
 * send every Bifrost socket back to Sync).
 */
export class Rebalancer {
  private readonly queue = new Map<string, { trigger: string; scope: 'changed' | 'all' }>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private closed = false;
  readonly rate: number;
  readonly policy: DrainPolicy;
  private readonly random: () => number;
  private unsubscribe: (() => void) | undefined;
  closedCount = 0;

  constructor(private readonly opts: RebalancerOptions) {
    this.rate = opts.rate ?? 100;
    if (!(this.rate > 0)) throw new Error(`rebalance rate must be a positive number, got ${this.rate}`);
    this.policy = opts.drain ?? 'close';
    this.random = opts.random ?? Math.random;
  }

  /** Starts listening for flag changes. */
  start(): void {
    this.unsubscribe = this.opts.flags.onChange(() => {
      if (this.policy === 'keep') {
        this.opts.log.info('flag changed; drain policy "keep": live sockets stay until they reconnect on their own');
        return;
      }
      void this.enqueue({ scope: 'changed' }, 'flag-change');
    });
  }

  get queued(): number {
    return this.queue.size;
  }

  /** Queues connections for closing; returns how many were queued. */
  async enqueue(req: DrainRequest, trigger: string): Promise<number> {
    const scope = req.scope ?? 'changed';
    let n = 0;
    for (const c of this.opts.registry.all()) {
      if (req.backend && c.backend !== req.backend) continue;
      if (req.node && c.node !== req.node) continue;
      if (scope === 'changed') {
        if (!c.userId) continue;
        const d = await this.opts.flags.decide(c.userId, c.teamId ?? '');
        if (d.reason !== 'flag' || d.route === c.backend) continue;
      }
      if (!this.queue.has(c.id)) {
        this.queue.set(c.id, { trigger, scope });
        n += 1;
      }
    }
    if (n > 0) this.opts.log.info({ queued: n, trigger, scope, rate: this.rate }, 'rebalancing connections');
    this.pump();
    return n;
  }

  private pump(): void {
    if (this.running || this.closed || this.queue.size === 0) return;
    this.running = true;
    const gap = 1000 / this.rate;
    const step = async (): Promise<void> => {
      this.timer = undefined;
      const next = this.queue.entries().next();
      if (next.done || this.closed) {
        this.running = false;
        return;
      }
      const [id, { trigger, scope }] = next.value;
      this.queue.delete(id);
      const c = this.opts.registry.get(id);
      if (c) {
        let to: Route | 'reconnect' = 'reconnect';
        let act = true;
        if (scope === 'changed' && c.userId) {
          const d = await this.opts.flags.decide(c.userId, c.teamId ?? '');
          act = d.reason === 'flag' && d.route !== c.backend;
          to = d.route;
        }
        if (act && this.opts.registry.get(id)) {
          this.opts.metrics.rebalanced.inc({ from: c.backend, to, trigger });
          this.closedCount += 1;
          c.close(`rebalance:${trigger}`);
        }
      }
      if (this.queue.size === 0 || this.closed) {
        this.running = false;
        return;
      }
      this.timer = setTimeout(() => void step(), gap * (0.5 + this.random()));
      this.timer.unref();
    };
    void step();
  }

  /**
   * Shutdown: closes every live connection at a random moment within
   * `windowMs`, so their reconnects (to another shim replica) are spread over
   * the window rather than arriving as one burst. Resolves when all are gone, or
   * at the end of the window plus a grace second.
   */
  async closeAllWithin(windowMs: number): Promise<void> {
    const all = this.opts.registry.all();
    if (all.length === 0) return;
    this.opts.log.info({ connections: all.length, windowMs }, 'closing every connection over the shutdown window');
    const timers = all.map((c) => {
      const t = setTimeout(() => {
        if (!this.opts.registry.get(c.id)) return;
        this.opts.metrics.rebalanced.inc({ from: c.backend, to: 'reconnect', trigger: 'shutdown' });
        this.closedCount += 1;
        c.close('shutdown');
      }, Math.floor(this.random() * windowMs));
      t.unref();
      return t;
    });
    const deadline = Date.now() + windowMs + 1000;
    while (this.opts.registry.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const t of timers) clearTimeout(t);
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    this.queue.clear();
  }
}
