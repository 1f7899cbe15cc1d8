/**
 * The dashboard's view of, and hands on, the guarded ramp that
 * `bifrost rollout ramp` runs. The ramp's state lives in the rollout
 * engineer's store (cli/rollout: `.bifrost/ramp.json`, or Redis when
 * REDIS_URL is set); every change goes through the store's atomic
 * `update(decide)`, exactly as `bifrost rollout pause|resume|rollback` do, so
 * the running ramp process and any terminal see the same document.
 *
 * - pause / resume flip `paused` on the unfinished ramp (its process holds the
 *   step and stops its clock while paused);
 * - end marks the unfinished ramp `rolling-back` to 0 % with no owner, as
 *   `bifrost rollout rollback` does: its process notices on its next tick and
 *   stops without touching the flag. The page then writes 0 % (the admin API's
 *   `PUT /api/rollout`) and only once the shim routes by it calls finish,
 *   which records `rolled-back`; then it drains. A 0 % write that fails leaves
 *   the record `rolling-back`, never "rolled back" while the flag is still up;
 *   `bifrost rollout rollback` or `rollout ramp --resume` finishes it.
 *   The ramp's process may have had a write on the way when it was ended: the
 *   plugin then watches the flags file for a while and writes 0 % again if a
 *   late write lands (cli/rollout/late-write-watch.ts), as `rollout rollback`
 *   does.
 * - pause / resume refuse a ramp that is rolling back.
 */
import { hostname } from 'node:os';
import { openRampStore } from '../../cli/rollout/open-ramp-store.ts';
import { LEASE_STALE_MS, leaseAlive, operatorRollbackDone, operatorRollbackStarted, timeLeftMs, unfinished, withEvent, type RampDoc, type RampLease } from '../../cli/rollout/ramp-state.ts';
import type { RampStore } from '../../cli/rollout/ramp-store.ts';

export type RampAction = 'pause' | 'resume' | 'end' | 'finish';

export interface RampActionResult {
  /** False when there was nothing to do (already paused, no ramp, ...). */
  changed: boolean;
  /** One line for the page. */
  message: string;
  /** No unfinished ramp to act on. */
  noRamp: boolean;
  ramp: RampDoc | null;
  /** `end` only: the ramp's owner before it was ended (its process may still have a write on the way). */
  endedOwner?: RampLease | null;
}

export interface RampView {
  id: string;
  phase: RampDoc['phase'];
  paused: boolean;
  pausedBy: string | null;
  steps: number[];
  stepIndex: number;
  /** Percentage of the current step (the last one once finished). */
  stepPercent: number;
  percent: number;
  intervalMs: number;
  stepElapsedMs: number;
  stepLeftMs: number;
  timeLeftMs: number;
  ownerAlive: boolean;
  owner: string | null;
  outcome: string | null;
  startedAt: string;
  updatedAt: string;
  limits: { maxErrorRate: number; maxP99Ms: number | null; minRequests: number; rollbackTo: number | null };
  breaches: { guard: string; text: string }[];
  history: { at: string; event: string; percent?: number; detail?: string }[];
}

/** The ramp document as the page shows it. */
export function rampView(doc: RampDoc, now = Date.now()): RampView {
  const n = doc.plan.steps.length;
  const i = Math.min(doc.stepIndex, n - 1);
  const running = doc.phase === 'running';
  return {
    id: doc.id,
    phase: doc.phase,
    paused: doc.paused,
    pausedBy: doc.pausedBy,
    steps: doc.plan.steps,
    stepIndex: doc.stepIndex,
    stepPercent: doc.plan.steps[i] ?? doc.percent,
    percent: doc.percent,
    intervalMs: doc.plan.intervalMs,
    stepElapsedMs: doc.stepElapsedMs,
    stepLeftMs: running ? Math.max(0, doc.plan.intervalMs - doc.stepElapsedMs) : 0,
    timeLeftMs: running ? timeLeftMs(doc) : 0,
    ownerAlive: leaseAlive(doc.owner, { now, host: hostname(), staleMs: LEASE_STALE_MS }),
    owner: doc.owner ? `pid ${doc.owner.pid} on ${doc.owner.host}` : null,
    outcome: doc.outcome,
    startedAt: doc.startedAt,
    updatedAt: doc.updatedAt,
    limits: { maxErrorRate: doc.plan.maxErrorRate, maxP99Ms: doc.plan.maxP99Ms, minRequests: doc.plan.minRequests, rollbackTo: doc.plan.rollbackTo },
    breaches: doc.breaches.map((b) => ({ guard: b.guard, text: b.text })),
    history: doc.history.slice(-6),
  };
}

export class RampControl {
  readonly store: RampStore;
  private readonly ownsStore: boolean;

  constructor(store?: RampStore) {
    this.ownsStore = !store;
    this.store = store ?? openRampStore();
  }

  read(): Promise<RampDoc | null> {
    return this.store.read();
  }

  /** Pauses, resumes or ends the unfinished ramp, on behalf of `by`. */
  async act(action: RampAction, by: string): Promise<RampActionResult> {
    const r = await this.store.update<{ doc: RampDoc | null; changed: boolean; endedOwner?: RampLease | null }>((cur) => {
      const u = unfinished(cur);
      if (!u) return { result: { doc: cur, changed: false } };
      const now = new Date();
      const message = `rolled back to 0% from the dashboard (${by})`;
      if (action === 'end') {
        if (u.phase === 'rolling-back' && u.rollback?.to === 0 && !u.owner) return { result: { doc: u, changed: false } };
        const next = operatorRollbackStarted(u, message, by, now);
        return { next, result: { doc: next, changed: true, endedOwner: u.owner } };
      }
      if (action === 'finish') {
        // Only the rollback `end` started (to 0 %), once the page has seen the shim route by 0 %.
        if (u.phase !== 'rolling-back' || u.rollback?.to !== 0) return { result: { doc: u, changed: false } };
        const next = operatorRollbackDone(u, message, by, now);
        return { next, result: { doc: next, changed: true } };
      }
      if (u.phase === 'rolling-back') return { result: { doc: u, changed: false } };
      const pausing = action === 'pause';
      if (u.paused === pausing) return { result: { doc: u, changed: false } };
      const next = withEvent(
        { ...u, paused: pausing, pausedBy: pausing ? by : null, pausedAt: pausing ? now.toISOString() : null, updatedAt: now.toISOString() },
        { event: pausing ? 'paused' : 'unpaused', percent: u.percent, detail: `by ${by}` },
        now,
      );
      return { next, result: { doc: next, changed: true } };
    });
    const doc = r.doc;
    if (doc && doc.phase === 'rolling-back' && !r.changed && action !== 'end') {
      const why = `the ramp is rolling back to ${doc.rollback?.to}%`;
      const finish = action === 'finish' ? 'not a rollback to 0% started here' : `nothing to ${action}`;
      return { changed: false, noRamp: true, ramp: doc, message: `${why}: ${finish}; \`bifrost rollout rollback\` or \`bifrost rollout ramp --resume\` finishes it` };
    }
    if (!doc || (!r.changed && doc.phase !== 'running' && doc.phase !== 'rolling-back')) {
      const last = doc ? ` (the last one ${doc.phase === 'completed' ? 'completed' : 'was rolled back'})` : '';
      return { changed: false, noRamp: true, ramp: doc, message: action === 'end' || action === 'finish' ? `no ramp in progress${last}` : `no ramp in progress to ${action}${last}` };
    }
    const step = `step ${Math.min(doc.stepIndex, doc.plan.steps.length - 1) + 1}/${doc.plan.steps.length}`;
    let message: string;
    if (action === 'end') {
      message = `the ramp is rolling back from ${step}: its process stops at its next tick`;
      return { changed: r.changed, noRamp: false, ramp: doc, message, endedOwner: r.endedOwner ?? null };
    }
    if (action === 'finish') message = `the ramp was rolled back to 0% at ${step}`;
    else if (action === 'pause') message = r.changed ? `ramp paused at ${step}: the rollout holds ${doc.percent}%` : `the ramp was already paused at ${step}`;
    else message = r.changed ? `ramp resumed at ${step}` : `the ramp was not paused (at ${step})`;
    return { changed: r.changed, noRamp: false, ramp: doc, message };
  }

  async close(): Promise<void> {
    if (this.ownsStore) await this.store.close().catch(() => undefined);
  }
}
