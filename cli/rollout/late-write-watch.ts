/**
 * After a ramp is ended from outside (`bifrost rollout rollback`, the
 * dashboard's "Roll back"), its process may have been writing the flag at that
 * very moment, with a write attempt already past its ownership check: that
 * write can land after the 0 %. The one who ended the ramp therefore watches
 * the rollout for a while and writes 0 % again when another percentage landed,
 * until the ramp's process records that it stopped (`process-stopped` in the
 * ramp's history), for at most `forMs`. One more check follows that record
 * (its last write may have just landed). The watch also ends when the ramp
 * state no longer holds that ramp (another one was started: its writes are
 * not late ones).
 */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROCESS_STOPPED_EVENT } from './ramp-runner.ts';
import { leaseAlive, type RampDoc, type RampLease } from './ramp-state.ts';

/** How long the rollout is watched for a late write, and how often. */
export const LATE_WRITE_WATCH_MS = 20_000;
export const LATE_WRITE_WATCH_EVERY_MS = 1_500;

/**
 * Whether the ramp's process may still write: it had an owner, and that owner
 * is not known gone (a process on another host, or one whose heartbeat went
 * stale but may only be stalled, counts as alive).
 */
export function ownerMayStillWrite(owner: RampLease | null | undefined): owner is RampLease {
  return leaseAlive(owner, { now: Date.now(), host: hostname(), staleMs: Infinity });
}

export interface LateWriteWatch {
  /** The ended ramp. */
  rampId: string;
  /** Its owner when it was ended. */
  owner: RampLease;
  readRamp(): Promise<RampDoc | null>;
  /** The percentage the rollout serves now. */
  readPercent(): Promise<number>;
  /** Writes 0 % again. */
  writeZero(): Promise<void>;
  /** Told of each late write found, before 0 % is written again. */
  onLateWrite(percent: number): void;
  forMs?: number;
  everyMs?: number;
  /** Ends the watch (the process is stopping). */
  signal?: AbortSignal;
}

/** Watches, and writes 0 % again after each late write; resolves with the number of late writes undone. */
export async function watchForLateWrites(w: LateWriteWatch): Promise<number> {
  const until = Date.now() + (w.forMs ?? LATE_WRITE_WATCH_MS);
  const everyMs = w.everyMs ?? LATE_WRITE_WATCH_EVERY_MS;
  let undone = 0;
  for (let last = false; !last; ) {
    await sleep(everyMs, undefined, { signal: w.signal }).catch(() => undefined);
    if (w.signal?.aborted) break;
    const doc = await w.readRamp().catch(() => null);
    if (doc && doc.id !== w.rampId) break;
    last = Date.now() >= until || !!doc?.history.some((e) => e.event === PROCESS_STOPPED_EVENT && e.detail === w.owner.id);
    const percent = await w.readPercent();
    if (percent !== 0) {
      w.onLateWrite(percent);
      await w.writeZero();
      undone += 1;
    }
  }
  return undone;
}
