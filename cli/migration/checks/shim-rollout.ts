/**
 * The rollout as the shim applies it (`GET /api/rollout` on the shim admin
 * API): what `canary` and `cutover` judge the percentage on.
 */
import { brief, httpCall, joinUrl } from '../http-call.ts';
import type { StackEndpoints } from '../step-check.ts';

export interface ShimRollout {
  /** Share of users (or teams) routed to Bifrost, 0..100. */
  percent: number;
  /** The flag's version (bumped by every write), or null when the shim does not say. */
  version: number | null;
}

/** Reads the shim's rollout; a string is why it could not (one line, for a check summary). */
export async function readShimRollout(stack: StackEndpoints, timeoutMs: number): Promise<ShimRollout | string> {
  const res = await httpCall(joinUrl(stack.adminUrl, '/api/rollout'), { timeoutMs });
  const body = res.body as { percent?: unknown; version?: unknown } | null;
  if (res.status !== 200 || typeof body?.percent !== 'number') {
    return `the shim admin API GET /api/rollout answered ${res.status} ${brief(res.body)}: expected {percent}`;
  }
  return { percent: body.percent, version: typeof body.version === 'number' ? body.version : null };
}
