/**
 * Retrying what a rollout command cannot afford to lose to a blip: flag reads
 * and writes (flags file, LaunchDarkly), ramp-store calls (file lock, Redis),
 * and above all the rollback write. Built on p-retry (exponential backoff with
 * jitter); each retry is announced in one line. The budget (`forMs`, passed
 * to p-retry as `maxRetryTime`) bounds when attempts START: no wait between
 * attempts runs past it (each wait is cut to the time left) and no attempt
 * begins after it. An attempt already in flight is not cancelled, so the whole
 * call can last `forMs` plus the duration of that last attempt.
 *
 * What is worth retrying (`isTransient`): anything that is not a CliError
 * (network errors, ioredis errors, fs errors other than refusals) and a
 * `TransientError`. A LaunchDarkly failure is not: its client has already
 * retried network errors, 5xx and 429s with backoff. A CliError
 * is a configuration problem (bad token, corrupt file): retrying it would
 * only delay the one clear line — except for the rollback write, which retries
 * everything (`all`), since the operator may fix the cause meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pRetry, { AbortError } from 'p-retry';
import { CliError, EXIT_CHECK_FAILED } from '../output.ts';
import { LaunchDarklyError } from './launchdarkly-rest.ts';
import { formatDuration } from './ramp-plan.ts';

/** A failure that may go away on its own (a store or service briefly unreachable, a lock held): exit 1, retried. */
export class TransientError extends CliError {
  constructor(message: string) {
    super(message, EXIT_CHECK_FAILED);
    this.name = 'TransientError';
  }
}

/** Whether a failure may go away by itself. */
export function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  // The LaunchDarkly client already retried its network errors, 5xx and 429s (launchdarkly-rest.ts): what reaches here stays.
  if (err instanceof LaunchDarklyError) return false;
  if (err instanceof CliError) return false;
  // A file system refusal (permissions, a file where a directory should be) does not go away by waiting.
  if (/^(EACCES|EPERM|ENOTDIR|EISDIR|EROFS|EEXIST|ENAMETOOLONG)$/.test(String((err as NodeJS.ErrnoException)?.code ?? ''))) return false;
  return true;
}

/** How long routine calls (step reads and writes, store updates) are retried. */
export const ROUTINE_RETRY_MS = 60_000;
/** How long the rollback write is retried before the ramp gives up (and stays `rolling-back`, resumable). */
export const ROLLBACK_RETRY_MS = 15 * 60_000;

export interface RetryOptions {
  /** No attempt starts once this long has passed since the first one (one in flight is not cancelled). */
  forMs: number;
  /** Retry every failure, not only transient ones. */
  all?: boolean;
  /** First and longest wait between attempts (default 250 ms, 15 s). */
  minWaitMs?: number;
  maxWaitMs?: number;
  signal?: AbortSignal;
  /** One line per retry (`… failed (why); retrying in 2s, attempt 3`). */
  onRetry?: (line: string) => void;
}

export function errorText(err: unknown): string {
  const e = err as Error & { cause?: Error };
  return e?.message ?? String(err);
}

/** Runs `fn` until it succeeds, a failure is not worth retrying, or `forMs` has passed (see the top of this file). */
export async function retrying<T>(what: string, fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const started = Date.now();
  const minWaitMs = o.minWaitMs ?? 250;
  const maxWaitMs = o.maxWaitMs ?? 15_000;
  let attempts = 0;
  let lastError: unknown;
  const left = () => o.forMs - (Date.now() - started);
  const worth = (err: unknown) => (o.all || isTransient(err)) && left() > 0 && !o.signal?.aborted;
  return pRetry(
    async () => {
      // The wait ended at the budget: give up with the last failure rather than start a late attempt.
      if (attempts > 0 && left() <= 0) throw new AbortError(lastError instanceof Error ? lastError : new Error(errorText(lastError)));
      attempts += 1;
      try {
        return await fn();
      } catch (err) {
        lastError = err;
        throw err;
      }
    },
    {
      forever: true,
      retries: 10,
      // p-retry's own waits are zero: the backoff is waited below, cut to the time left.
      minTimeout: 0,
      maxTimeout: 0,
      // No attempt after the budget (checked by p-retry after each failure, after the wait below).
      maxRetryTime: o.forMs,
      signal: o.signal,
      shouldRetry: (err) => worth(err),
      onFailedAttempt: async (err) => {
        if (!worth(err)) return;
        // Exponential backoff with jitter (as p-retry's `randomize`), never longer than the budget left.
        const backoff = Math.min(maxWaitMs, minWaitMs * 2 ** (attempts - 1) * (1 + Math.random()));
        const waitMs = Math.max(0, Math.min(backoff, left()));
        o.onRetry?.(`${what} failed (${errorText(err)}); retrying with backoff (attempt ${attempts + 1}, giving up in ${formatDuration(left())})`);
        await sleep(waitMs, undefined, { signal: o.signal });
      },
    },
  );
}
