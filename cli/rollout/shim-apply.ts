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
 *
 * With several shim replicas (`--admin-url` given more than once) every one
 * is polled, each for the same `--apply-timeout`, and the check is `applied`
 * only when all of them apply the write: a replica that answers with another
 * percentage makes it `not-applied`, and one that cannot be reached (while the
 * others applied it) `no-shim` — nobody confirmed that replica's users moved.
 * `replicas` then says how each one answered. A drain is asked of every replica.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BucketBy } from '../../proxy/flags-file.ts';
import { samePercent } from './flag-overrides.ts';
import type { FlagTarget } from './flag-target.ts';
import { formatDuration } from './ramp-plan.ts';
import { currentReplicas, type DrainAnswer, type ShimAdminClient, type ShimAdmins, type ShimRolloutSnapshot } from './shim-admin-client.ts';

/** Default of `--apply-timeout`: the flags file is reloaded within a second, LaunchDarkly streams within seconds. */
export const DEFAULT_APPLY_TIMEOUT_MS = 10_000;

/** How one shim replica answered (in `replicas` when there are several). */
export interface ReplicaApply {
  url: string;
  state: 'applied' | 'not-applied' | 'no-shim';
  /** The percentage it routes by, when it answered. */
  percent: number | null;
  afterMs?: number;
  message?: string;
}

export type ApplyCheck = (
  | { state: 'applied'; afterMs: number; snapshot: ShimRolloutSnapshot }
  | { state: 'not-applied'; afterMs: number; snapshot: ShimRolloutSnapshot; message: string }
  | { state: 'no-shim'; error: string; message: string }
) & { replicas?: ReplicaApply[] };

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

interface ApplyWait {
  timeoutMs?: number;
  everyMs?: number;
  signal?: AbortSignal;
}

/**
 * Polls the shim (every replica) until it reports `percent` (and `bucketBy`),
 * at most `timeoutMs`. A shim that cannot be reached at the first poll is
 * `no-shim` at once; one that goes away meanwhile keeps being polled until the
 * deadline.
 */
export async function waitUntilApplied(
  admins: ShimAdmins,
  flag: FlagTarget & { file?: string },
  want: { percent: number; bucketBy?: BucketBy },
  o: ApplyWait = {},
): Promise<ApplyCheck> {
  const replicas = await currentReplicas(admins);
  if (replicas.length === 1) return waitForReplica(replicas[0]!, flag, want, o);
  const checks = await Promise.all(replicas.map((r) => waitForReplica(r, flag, want, o)));
  return combineChecks(replicas, checks, want.percent);
}

function replicaApply(url: string, c: ApplyCheck): ReplicaApply {
  if (c.state === 'no-shim') return { url, state: c.state, percent: null, message: c.error };
  return { url, state: c.state, percent: c.snapshot.percent, afterMs: c.afterMs, ...(c.state === 'not-applied' ? { message: c.message } : {}) };
}

/** One check for several replicas: applied by all, else the worst answer, naming each replica that did not apply it. */
function combineChecks(replicas: readonly ShimAdminClient[], checks: ApplyCheck[], percent: number): ApplyCheck {
  const per = checks.map((c, i) => replicaApply(replicas[i]!.url, c));
  const n = replicas.length;
  const applied = per.filter((r) => r.state === 'applied');
  const appliedBy = applied.length ? `; applied by ${applied.map((r) => r.url).join(', ')}` : '';
  const unreachable = checks.filter((c): c is Extract<ApplyCheck, { state: 'no-shim' }> => c.state === 'no-shim');
  const notApplied = checks.filter((c): c is Extract<ApplyCheck, { state: 'not-applied' }> => c.state === 'not-applied');
  if (notApplied.length) {
    const down = unreachable.length ? `; not reachable: ${per.filter((r) => r.state === 'no-shim').map((r) => `${r.url} (${r.message})`).join(', ')}` : '';
    return {
      state: 'not-applied',
      afterMs: Math.max(...notApplied.map((c) => c.afterMs)),
      snapshot: notApplied[0]!.snapshot,
      message: `${notApplied.length} of ${n} shim replicas did not apply ${percent}%: ${notApplied.map((c) => c.message).join('; ')}${down}${appliedBy}`,
      replicas: per,
    };
  }
  if (unreachable.length) {
    const error = per
      .filter((r) => r.state === 'no-shim')
      .map((r) => r.message)
      .join('; ');
    return {
      state: 'no-shim',
      error,
      message: `could not confirm that every shim replica applies ${percent}%: ${unreachable.length} of ${n} did not answer (${error})${appliedBy}; check the --admin-url list and that each shim runs`,
      replicas: per,
    };
  }
  const all = checks as Extract<ApplyCheck, { state: 'applied' }>[];
  return { state: 'applied', afterMs: Math.max(...all.map((c) => c.afterMs)), snapshot: all[0]!.snapshot, replicas: per };
}

async function waitForReplica(
  admin: ShimAdminClient,
  flag: FlagTarget & { file?: string },
  want: { percent: number; bucketBy?: BucketBy },
  o: ApplyWait,
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
 * Asks the shim (every replica) to drain, but only once it applies the new
 * percentage: before that a drain moves nobody, so the answer says why none
 * was asked for (`not asked: …`) instead of "0 queued". That covers `no-shim`
 * too: nothing answered, so a drain request would only fail the same way.
 * Several replicas: `queued` and `rate` are their sums (each drains its own
 * connections at its own rate); one that fails makes the answer an error that
 * names it and says what the others queued.
 */
export async function drainIfApplied(admins: ShimAdmins, check: ApplyCheck): Promise<DrainAnswer | { error: string }> {
  if (check.state !== 'applied') return { error: `not asked: ${check.message}` };
  const replicas = await currentReplicas(admins);
  const answers = await Promise.allSettled(replicas.map((r) => r.drain({ scope: 'changed' })));
  const failed = answers.flatMap((a) => (a.status === 'rejected' ? [(a.reason as Error).message] : []));
  const ok = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
  if (replicas.length === 1) return ok[0] ?? { error: failed[0]! };
  const queued = ok.reduce((n, a) => n + a.queued, 0);
  if (failed.length) return { error: `${failed.join('; ')}${ok.length ? ` (the other ${ok.length} replica(s) queued ${queued} connection(s))` : ''}` };
  return { queued, rate: ok.reduce((n, a) => n + a.rate, 0), scope: ok[0]!.scope };
}
