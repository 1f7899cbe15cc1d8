/**
 * The persisted state of a ramp, and who runs it.
 *
 * One document (`RampDoc`) holds the plan, where the ramp is (step, time
 * observed at that step), whether it is paused, how it ended, and the **lease**
 * of the process running it (owner id, pid, host, heartbeat). A store
 * (`ramp-store-file.ts`, `ramp-store-redis.ts`) applies every change as an
 * atomic read-decide-write, so the running ramp, `rollout pause|resume|
 * rollback` from another terminal and a second ramp never lose an update.
 *
 * A lease is alive while its heartbeat is fresh and, on the same host, its
 * process still runs (its pid exists and, where Linux's /proc tells, with the
 * boot and start time the lease recorded, so a reused pid does not keep a
 * killed ramp's lease); a dead owner's lease is taken over (that is how a
 * killed ramp resumes), a live one refuses a second ramp.
 */
import { hostname } from 'node:os';
import { asProcessIdentity, processAlive, type ProcessIdentity } from '../pid.ts';
import type { GuardReading } from './ramp-guards.ts';
import type { RampPlan } from './ramp-plan.ts';

export const RAMP_FORMAT = 'bifrost-rollout-ramp';

/** A ramp lease without a heartbeat for this long is dead (the CLI, its ramp runner and the dashboard agree on it). */
export const LEASE_STALE_MS = 15_000;

/**
 * `running` = unfinished (maybe paused, maybe without a live owner after a kill).
 * `rolling-back` = a guard breached and the rollback to `rollback.to` is not
 * confirmed written yet (the write is being retried, or its process died):
 * `rollout ramp --resume` (or `rollout rollback`) finishes it — a rollback is
 * never dropped and the breaching step never applied again.
 */
export type RampPhase = 'running' | 'rolling-back' | 'completed' | 'rolled-back';

/** The rollback a breach decided, kept until the flag is confirmed written. */
export interface PendingRollback {
  /** The percentage to go back to. */
  to: number;
  /** The step percentage that breached. */
  from: number;
  /** The outcome line once done. */
  message: string;
  decidedAt: string;
}

export interface RampLease {
  id: string;
  pid: number;
  host: string;
  /** Boot and start time of the process (Linux; absent in older documents: the pid alone decides). */
  process?: ProcessIdentity;
  startedAt: string;
  /** ms epoch of the last heartbeat. */
  heartbeatAt: number;
}

export interface RampEvent {
  at: string;
  event: string;
  percent?: number;
  detail?: string;
}

export interface RampDoc {
  format: typeof RAMP_FORMAT;
  /** Bumped by every write (the Redis store compares it). */
  version: number;
  id: string;
  plan: RampPlan;
  phase: RampPhase;
  stepIndex: number;
  /** Time the current step has been watched (paused time excluded). */
  stepElapsedMs: number;
  /** The percentage when the ramp began (the "last good" before the first step). */
  startPercent: number;
  lastGoodPercent: number;
  /** What the ramp last applied. */
  percent: number;
  paused: boolean;
  pausedBy: string | null;
  pausedAt: string | null;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** How it ended, in one line. */
  outcome: string | null;
  /** The guard readings that breached (rolled back by a guard). */
  breaches: GuardReading[];
  /** Set while `phase` is `rolling-back` (and kept after, for the record). */
  rollback?: PendingRollback | null;
  /**
   * The running ramp's latest guard readings for the current step: what it
   * decides on (Sync as a baseline included). Written at each sample, so the
   * dashboard shows the ramp's own numbers. Absent in files from older versions.
   */
  readings?: StepReadings | null;
  owner: RampLease | null;
  /** The last events, newest last (bounded). */
  history: RampEvent[];
}

export interface StepReadings {
  /** The step they belong to. */
  stepIndex: number;
  /** ms epoch: when the step's metrics window began, and when these were evaluated. */
  since: number;
  at: number;
  guards: GuardReading[];
}

export const HISTORY_LIMIT = 50;

/** Appends an event, keeping the last HISTORY_LIMIT. */
export function withEvent(doc: RampDoc, e: Omit<RampEvent, 'at'>, now = new Date()): RampDoc {
  const history = [...doc.history, { at: now.toISOString(), ...e }].slice(-HISTORY_LIMIT);
  return { ...doc, history };
}

/**
 * An operator's rollback (`bifrost rollout rollback`, the dashboard's button),
 * step 1: the unfinished ramp is rolling back to 0 % with no owner, so its
 * process stops before its next flag write. `message` becomes the outcome.
 */
export function operatorRollbackStarted(u: RampDoc, message: string, by: string, now = new Date()): RampDoc {
  return withEvent(
    { ...u, phase: 'rolling-back', owner: null, rollback: { to: 0, from: u.percent, message, decidedAt: now.toISOString() }, updatedAt: now.toISOString() },
    { event: 'rolling-back', percent: 0, detail: `by ${by}` },
    now,
  );
}

/** An operator's rollback, last step: 0 % is written (and applied), the ramp is rolled back. */
export function operatorRollbackDone(u: RampDoc, message: string, by: string, now = new Date()): RampDoc {
  return withEvent(
    { ...u, phase: 'rolled-back', percent: 0, owner: null, finishedAt: now.toISOString(), updatedAt: now.toISOString(), outcome: message },
    { event: 'rolled-back', percent: 0, detail: `by ${by}` },
    now,
  );
}

export interface LeaseCheck {
  now: number;
  host: string;
  staleMs: number;
  /** Whether the recorded process still runs on this host (default `processAlive`). */
  isProcessAlive?: (pid: number, identity?: ProcessIdentity) => boolean;
}

/** Whether a lease still belongs to a live ramp process. */
export function leaseAlive(lease: RampLease | null | undefined, c: LeaseCheck): boolean {
  if (!lease) return false;
  if (c.now - lease.heartbeatAt > c.staleMs) return false;
  if (lease.host === c.host && !(c.isProcessAlive ?? processAlive)(lease.pid, asProcessIdentity(lease.process))) return false;
  return true;
}

/**
 * Why a ramp blocks a write of the rollout from outside it (`rollout set`,
 * `simulate`), or null: an unfinished rollback (`rolling-back`; writing
 * anything else would move the rollout away from it), or a ramp that runs —
 * not paused, with a live lease (it would override the write).
 */
export function rampBlocksWrite(doc: RampDoc | null, c: Partial<LeaseCheck> = {}): { reason: 'rolling-back' | 'running'; ramp: RampDoc } | null {
  const ramp = unfinished(doc);
  if (!ramp) return null;
  if (ramp.phase === 'rolling-back') return { reason: 'rolling-back', ramp };
  const check: LeaseCheck = { now: Date.now(), host: hostname(), staleMs: LEASE_STALE_MS, ...c };
  if (!ramp.paused && leaseAlive(ramp.owner, check)) return { reason: 'running', ramp };
  return null;
}

/** The unfinished ramp (phase running or rolling-back), or null. */
export function unfinished(doc: RampDoc | null): RampDoc | null {
  return doc && (doc.phase === 'running' || doc.phase === 'rolling-back') ? doc : null;
}

/** Checks the shape of a stored ramp document; returns what is wrong, or null. */
export function rampDocProblem(v: unknown): string | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not an object';
  const d = v as Partial<RampDoc>;
  if (d.format !== RAMP_FORMAT) return `"format" is not "${RAMP_FORMAT}"`;
  if (typeof d.version !== 'number') return '"version" must be a number';
  if (d.phase !== 'running' && d.phase !== 'rolling-back' && d.phase !== 'completed' && d.phase !== 'rolled-back') return `"phase" must be running, rolling-back, completed or rolled-back`;
  if (d.phase === 'rolling-back' && (!d.rollback || typeof d.rollback.to !== 'number')) return '"rollback" must say where a rolling-back ramp goes';
  if (!d.plan || !Array.isArray(d.plan.steps) || typeof d.plan.intervalMs !== 'number') return '"plan" must hold steps and intervalMs';
  if (typeof d.stepIndex !== 'number' || d.stepIndex < 0 || d.stepIndex > d.plan.steps.length) return '"stepIndex" is out of range';
  if (typeof d.stepElapsedMs !== 'number') return '"stepElapsedMs" must be a number';
  if (typeof d.paused !== 'boolean') return '"paused" must be true or false';
  if (!Array.isArray(d.history)) return '"history" must be a list';
  return null;
}

/** Time left in the whole ramp (current step's rest plus the following steps). */
export function timeLeftMs(doc: Pick<RampDoc, 'plan' | 'stepIndex' | 'stepElapsedMs'>): number {
  const remainingSteps = Math.max(0, doc.plan.steps.length - doc.stepIndex - 1);
  const inStep = doc.stepIndex < doc.plan.steps.length ? Math.max(0, doc.plan.intervalMs - doc.stepElapsedMs) : 0;
  return inStep + remainingSteps * doc.plan.intervalMs;
}
