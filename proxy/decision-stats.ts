/**
 * Routing decisions for `GET /api/rollout`: running totals by route and
 * reason (the Prometheus counters carry the same numbers with more labels),
 * and per route over the last minutes (`recent-counts.ts`).
 */
import type { Route } from './flags-file.ts';
import { RecentCounts, type RecentCountsOptions } from './recent-counts.ts';

export class DecisionStats {
  readonly byRoute: Record<Route, number> = { sync: 0, bifrost: 0 };
  readonly byReason: Record<string, number> = {};
  readonly recent: RecentCounts<Route>;

  constructor(recent: RecentCountsOptions = {}) {
    this.recent = new RecentCounts<Route>(recent);
  }

  record(route: Route, reason: string): void {
    this.byRoute[route] += 1;
    this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
    this.recent.add(route);
  }

  snapshot(): { sync: number; bifrost: number; byReason: Record<string, number> } {
    return { ...this.byRoute, byReason: { ...this.byReason } };
  }

  /** Decisions per route in the recent window. */
  recentSnapshot(): { sync: number; bifrost: number } {
    const t = this.recent.totals();
    return { sync: t.sync ?? 0, bifrost: t.bifrost ?? 0 };
  }
}
