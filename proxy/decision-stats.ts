/**
 * Running totals of routing decisions, for `GET /api/rollout` (the Prometheus
 * counters carry the same numbers with more labels).
 */
import type { Route } from './flags-file.ts';

export class DecisionStats {
  readonly byRoute: Record<Route, number> = { sync: 0, bifrost: 0 };
  readonly byReason: Record<string, number> = {};

  record(route: Route, reason: string): void {
    this.byRoute[route] += 1;
    this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
  }

  snapshot(): { sync: number; bifrost: number; byReason: Record<string, number> } {
    return { ...this.byRoute, byReason: { ...this.byReason } };
  }
}
