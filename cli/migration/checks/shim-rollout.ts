/**
 * The rollout as the shim applies it (`GET /api/rollout` on the shim admin
 * API, through the rollout commands' `ShimAdminClient`): what `canary` and
 * `cutover` judge the percentage on.
 */
import { ShimAdminClient, adminTokenFromEnv } from '../../rollout/shim-admin-client.ts';
import { brief } from '../http-call.ts';
import type { StackEndpoints } from '../step-check.ts';

export interface ShimRollout {
  /** Share of users (or teams) routed to Bifrost, 0..100. */
  percent: number;
  /** The flag's version (bumped by every write), or null when the shim does not say. */
  version: number | null;
}

/** Reads the shim's rollout; a string is why it could not (one line, for a check summary). */
export async function readShimRollout(stack: StackEndpoints, timeoutMs: number): Promise<ShimRollout | string> {
  let snapshot: Partial<Record<'percent' | 'version', unknown>> | null;
  try {
    snapshot = await new ShimAdminClient(stack.adminUrl, adminTokenFromEnv(), timeoutMs).rollout();
  } catch (err) {
    // Unreachable, timed out, or a non-2xx answer: the client's one line names the URL and the status.
    // A 2xx body that is not JSON fails to parse.
    return err instanceof SyntaxError ? `the shim admin API GET /api/rollout answered something that is not JSON (${err.message}): expected {percent}` : (err as Error).message;
  }
  if (typeof snapshot?.percent !== 'number') return `the shim admin API GET /api/rollout answered ${brief(snapshot)}: expected {percent}`;
  return { percent: snapshot.percent, version: typeof snapshot.version === 'number' ? snapshot.version : null };
}
