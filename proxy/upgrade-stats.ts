/**
 * Socket upgrade outcomes per backend over the last minutes, for
 * `GET /api/rollout` (`recent.upgrades`). Fed by the socket router wherever it
 * increments `bifrost_shim_upgrades_total`, with the same outcomes folded into
 * `ok` and `failed` the way the ramp's guard counts them: `rejected`,
 * `refused`, `error` and `unavailable` are failures; `aborted` (the client
 * gave up) is neither.
 */
import type { Route } from './flags-file.ts';
import { RecentCounts, type RecentCountsOptions } from './recent-counts.ts';

/** Upgrade outcomes that count as failures (`aborted` is the client giving up). */
export const FAILED_UPGRADE_OUTCOMES: ReadonlySet<string> = new Set(['rejected', 'refused', 'error', 'unavailable']);

type Key = `${Route}:${'ok' | 'failed'}`;

export interface RecentUpgrades {
  sync: { ok: number; failed: number };
  bifrost: { ok: number; failed: number };
}

export class UpgradeStats {
  readonly recent: RecentCounts<Key>;

  constructor(recent: RecentCountsOptions = {}) {
    this.recent = new RecentCounts<Key>(recent);
  }

  /** One upgrade's outcome, as labelled on `bifrost_shim_upgrades_total`. */
  record(backend: Route, outcome: string): void {
    if (outcome === 'ok') this.recent.add(`${backend}:ok`);
    else if (FAILED_UPGRADE_OUTCOMES.has(outcome)) this.recent.add(`${backend}:failed`);
  }

  recentSnapshot(): RecentUpgrades {
    const t = this.recent.totals();
    return {
      sync: { ok: t['sync:ok'] ?? 0, failed: t['sync:failed'] ?? 0 },
      bifrost: { ok: t['bifrost:ok'] ?? 0, failed: t['bifrost:failed'] ?? 0 },
    };
  }
}
