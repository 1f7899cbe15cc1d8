/**
 * Whether the shim applies what a rollout command wrote. Writing the flag is
 * not the change: the change is the shim routing by it. After each write the
 * CLI polls the shim's `GET /api/rollout` until the percentage (and bucket-by)
 * in force is the one written, for at most `--apply-timeout`:
 *
 * - `applied`: the shim reports the new percentage (only then is a drain
 *   worth asking for: before it, the shim would move nobody);
 * - `not-applied`: the shim answers but keeps another percentage — it reads
 *   another flags file or another LaunchDarkly environment (the message says
 *   which), or its flag reloads fail;
 * - `no-shim`: nothing answers at the admin URL, so nobody could confirm.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BucketBy } from '../../proxy/flags-file.ts';
import { samePercent } from './flag-overrides.ts';
import type { FlagTarget } from './flag-target.ts';
import { formatDuration } from './ramp-plan.ts';
import type { DrainAnswer, ShimAdminClient, ShimRolloutSnapshot } from './shim-admin-client.ts';

/** Default of `--apply-timeout`: the flags file is reloaded within a second, LaunchDarkly streams within seconds. */
export const DEFAULT_APPLY_TIMEOUT_MS = 10_000;

export type ApplyCheck =
  | { state: 'applied'; afterMs: number; snapshot: ShimRolloutSnapshot }
  | { state: 'not-applied'; afterMs: number; snapshot: ShimRolloutSnapshot; message: string }
  | { state: 'no-shim'; error: string; message: string };

function hint(snapshot: ShimRolloutSnapshot, flag: FlagTarget & { file?: string }): string {
  if (flag.kind === 'file' && snapshot.source === 'launchdarkly') return `the shim takes its flag from live LaunchDarkly (LD_SDK_KEY), not from ${flag.description}: set LD_API_TOKEN, LD_PROJECT_KEY and LD_ENVIRONMENT_KEY so this command changes LaunchDarkly`;
  if (flag.kind === 'launchdarkly' && snapshot.source === 'file') return `the shim reads the flags file ${snapshot.flagsFile ?? '?'}, not LaunchDarkly: unset LD_API_TOKEN/LD_PROJECT_KEY/LD_ENVIRONMENT_KEY, or start the shim with LD_SDK_KEY`;
  if (flag.kind === 'file' && snapshot.flagsFile && flag.file && path.resolve(snapshot.flagsFile) !== path.resolve(flag.file)) {
    return `the shim reads ${snapshot.flagsFile}, this command wrote ${path.resolve(flag.file)}: pass --flags-file ${snapshot.flagsFile} (or set BIFROST_FLAGS_FILE)`;
  }
  if (snapshot.flagSource && !snapshot.flagSource.ready) return `the shim's flags are not loaded (${snapshot.flagSource.state}${snapshot.flagSource.error ? `: ${snapshot.flagSource.error}` : ''}), so it routes everyone to Sync: check LD_SDK_KEY and its access to LaunchDarkly (\`GET /readyz\` on the admin port)`;
  if (snapshot.flagReloads?.lastError) return `the shim's last flag reload failed: ${snapshot.flagReloads.lastError}`;
  return 'check that the shim reads the flag this command wrote (`bifrost rollout status`)';
}

/**
 * Polls the shim until it reports `percent` (and `bucketBy`), at most `timeoutMs`.
 * A shim that cannot be reached at the first poll is `no-shim` at once; one
 * that goes away meanwhile keeps being polled until the deadline.
 */
export async function waitUntilApplied(
  admin: ShimAdminClient,
  flag: FlagTarget & { file?: string },
  want: { percent: number; bucketBy?: BucketBy },
  o: { timeoutMs?: number; everyMs?: number; signal?: AbortSignal } = {},
): Promise<ApplyCheck> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_APPLY_TIMEOUT_MS;
  const everyMs = o.everyMs ?? 100;
  const started = Date.now();
  let last: ShimRolloutSnapshot | undefined;
  let lastError = '';
  for (;;) {
    try {
      last = await admin.rollout();
      if (samePercent(last.percent, want.percent) && (!want.bucketBy || last.bucketBy === want.bucketBy)) return { state: 'applied', afterMs: Date.now() - started, snapshot: last };
    } catch (err) {
      lastError = (err as Error).message;
      if (!last) {
        return {
          state: 'no-shim',
          error: lastError,
          message: `could not confirm that the shim applies ${want.percent}%: ${lastError} (pass --admin-url, or check the shim runs)`,
        };
      }
    }
    if (Date.now() - started >= timeoutMs || o.signal?.aborted) break;
    await sleep(everyMs);
  }
  const at = last!;
  return {
    state: 'not-applied',
    afterMs: Date.now() - started,
    snapshot: at,
    message: `the shim at ${admin.url} still routes ${at.percent ?? '?'}%${at.bucketBy ? ` by ${at.bucketBy}` : ''} ${formatDuration(Date.now() - started)} after ${want.percent}% was written to ${flag.description}${lastError ? ` (last poll: ${lastError})` : ''}: ${hint(at, flag)}`,
  };
}

/**
 * Asks the shim to drain, but only once it applies the new percentage: before
 * that a drain moves nobody, so the answer says why none was asked for
 * (`not asked: …`) instead of "0 queued". That covers `no-shim` too: nothing
 * answered, so a drain request would only fail the same way.
 */
export async function drainIfApplied(admin: ShimAdminClient, check: ApplyCheck): Promise<DrainAnswer | { error: string }> {
  if (check.state !== 'applied') return { error: `not asked: ${check.message}` };
  try {
    return await admin.drain({ scope: 'changed' });
  } catch (err) {
    return { error: (err as Error).message };
  }
}
