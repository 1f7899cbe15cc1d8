/**
 * The flag source's status as the admin API (`GET /api/rollout`, `/readyz`)
 * and the dashboard snapshot show it: `ready` false means every user goes to
 * Sync whatever the rollout says, `error` says why.
 */
import type { FlagSource, FlagSourceState } from './flag-source.ts';

export interface FlagSourceView {
  state: FlagSourceState;
  ready: boolean;
  error: string | null;
  /** ISO time of the last state change. */
  since: string;
}

export function flagSourceView(flags: FlagSource): FlagSourceView {
  const st = flags.status();
  return { state: st.state, ready: st.state === 'ready', error: st.error ?? null, since: new Date(st.since).toISOString() };
}
