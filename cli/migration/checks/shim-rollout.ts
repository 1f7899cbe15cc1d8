/**
 * The rollout as the shim applies it (`GET /api/rollout` on the shim admin
 * API, through the rollout commands' `ShimAdminClient`): what `canary` and
 * `cutover` judge the percentage on. With several shim replicas
 * (`--admin-url` repeated) every one is read: the rollout is the lowest
 * percentage any of them applies (a step needing "at least N %" must hold on
 * every replica), the version the highest, and a replica that cannot be read
 * fails the read, naming it.
 */
import { ShimAdminClient, adminTokenFromEnv } from '../../rollout/shim-admin-client.ts';
import { brief } from '../http-call.ts';
import { shimAdminUrls, type StackEndpoints } from '../step-check.ts';

export interface ShimRollout {
  /** Share of users (or teams) routed to Bifrost, 0..100 (the lowest among replicas). */
  percent: number;
  /** The flag's version (bumped by every write), or null when the shim does not say. */
  version: number | null;
  /** Each replica's, when there are several. */
  replicas?: { url: string; percent: number; version: number | null }[];
}

async function readOne(url: string, timeoutMs: number): Promise<ShimRollout | string> {
  let snapshot: Partial<Record<'percent' | 'version', unknown>> | null;
  try {
    snapshot = await new ShimAdminClient(url, adminTokenFromEnv(), timeoutMs).rollout();
  } catch (err) {
    // Unreachable, timed out, or a non-2xx answer: the client's one line names the URL and the status.
    // A 2xx body that is not JSON fails to parse.
    return err instanceof SyntaxError ? `the shim admin API GET /api/rollout at ${url} answered something that is not JSON (${err.message}): expected {percent}` : (err as Error).message;
  }
  if (typeof snapshot?.percent !== 'number') return `the shim admin API GET /api/rollout at ${url} answered ${brief(snapshot)}: expected {percent}`;
  return { percent: snapshot.percent, version: typeof snapshot.version === 'number' ? snapshot.version : null };
}

/** Reads the shim's rollout (every replica's); a string is why it could not (one line, for a check summary). */
export async function readShimRollout(stack: StackEndpoints, timeoutMs: number): Promise<ShimRollout | string> {
  const expanded = await shimAdminUrls(stack);
  const urls = expanded.map((e) => e.url);
  const read = await Promise.all(expanded.map((e) => (e.error ? e.error : readOne(e.url, timeoutMs))));
  const bad = read.filter((r): r is string => typeof r === 'string');
  if (bad.length) return urls.length === 1 ? bad[0]! : `${bad.length} of ${urls.length} shim replicas could not be read: ${bad.join('; ')}`;
  const ok = read as ShimRollout[];
  if (ok.length === 1) return ok[0]!;
  const versions = ok.map((r) => r.version).filter((v): v is number => v !== null);
  return {
    percent: Math.min(...ok.map((r) => r.percent)),
    version: versions.length === ok.length ? Math.max(...versions) : null,
    replicas: ok.map((r, i) => ({ url: urls[i]!, percent: r.percent, version: r.version })),
  };
}

/** One output line naming each replica's percentage when they differ; null otherwise. */
export function replicaSpread(r: ShimRollout): string | null {
  if (!r.replicas || new Set(r.replicas.map((x) => x.percent)).size < 2) return null;
  return `the shim replicas apply different percentages (${r.replicas.map((x) => `${x.url}: ${x.percent}%`).join(', ')}); the lowest counts`;
}
