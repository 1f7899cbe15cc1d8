/**
 * Runs a guarded ramp: applies each step's percentage, watches the metrics for
 * the step's interval, and moves on — or, when a guard breaches, rolls back to
 * the last good step (or the plan's `rollbackTo`), asks the shim to drain, and
 * stops.
 *
 * Everything the ramp knows is in the ramp store, written on every tick
 * together with the lease's heartbeat:
 * - `rollout pause` / `resume` from another terminal flip `paused`; a paused
 *   ramp holds its percentage and its clock (guards keep watching);
 * - `rollout rollback` ends the ramp (phase `rolling-back` to 0 %, no owner,
 *   then `rolled-back`); the runner sees it on its next tick or before its next
 *   flag write attempt, stops without touching the flag again, and records
 *   `process-stopped` (so `rollout rollback` stops watching for a late write);
 * - a killed runner leaves phase `running` with a dead lease; running the same
 *   command again (or `--resume`) takes the lease over and continues the same
 *   step with the time already watched;
 * - a second runner finds a live lease and is refused;
 * - a breach first records phase `rolling-back` (where to, why), then writes
 *   the flag, retrying with backoff for up to 15 minutes (a line per retry),
 *   then waits for the shim to report the new percentage, then drains. A
 *   rollback whose write never landed (or whose process died) stays
 *   `rolling-back`: `--resume` finishes it instead of applying the breaching
 *   step again.
 *
 * A new ramp only moves forward: a first step below the current percentage
 * is refused, and a rollback always goes below the step that breached
 * (`rollbackTarget`). Before every attempt of a flag write (step or rollback)
 * the runner checks the ramp is still its own and refreshes its heartbeat. Every
 * step is confirmed applied by the shim (`GET /api/rollout`) before it is
 * watched. Flag reads and writes and store calls are retried (retry.ts).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortError } from 'p-retry';
import { CliError, EXIT_USAGE } from '../output.ts';
import { processIdentity } from '../pid.ts';
import type { FlagTarget, FlagWriteResult } from './flag-target.ts';
import { MetricsWindow, SYNC_SOURCE, type Scrape } from './metrics-window.ts';
import type { RampReporter, RampView } from './progress-bar.ts';
import { breaches, evaluateGuards, stepEndGuards, summarizeReadings, type GuardReading } from './ramp-guards.ts';
import { describePlan, formatDuration, samePlan, type RampPlan } from './ramp-plan.ts';
import { LEASE_STALE_MS, RAMP_FORMAT, leaseAlive, timeLeftMs, unfinished, withEvent, type PendingRollback, type RampDoc, type RampEvent, type RampLease } from './ramp-state.ts';
import type { RampStore } from './ramp-store.ts';
import { ROLLBACK_RETRY_MS, ROUTINE_RETRY_MS, errorText, retrying } from './retry.ts';
import { drainIfApplied, waitUntilApplied, type ApplyCheck } from './shim-apply.ts';
import type { DrainAnswer, ShimAdmins } from './shim-admin-client.ts';

export interface RampRequest {
  /** Null with `resume`: continue the stored plan. */
  plan: RampPlan | null;
  resume: boolean;
  /** Discard an unfinished (not running) ramp and start this plan. */
  restart: boolean;
}

export interface RampDeps {
  store: RampStore;
  flag: FlagTarget;
  sampler: { scrape(): Promise<Scrape> };
  reporter: RampReporter;
  /** Asked to drain after a rollback; optional. */
  admin?: ShimAdmins;
  signal?: AbortSignal;
  host?: string;
  pid?: number;
  /** A lease without a heartbeat for this long is dead (default LEASE_STALE_MS, 15 s). */
  leaseStaleMs?: number;
  /** Heartbeat / clock period (default interval/10, within 100 ms..1 s). */
  tickMs?: number;
  /** Metrics scrape period (default interval/6, within 250 ms..15 s). */
  sampleEveryMs?: number;
  /** How long the shim gets to report a written percentage (default 10 s). */
  applyTimeoutMs?: number;
  /** Retry budget of flag reads and writes and store calls (default ROUTINE_RETRY_MS). */
  retryMs?: number;
  /** Retry budget of the rollback write (default ROLLBACK_RETRY_MS). */
  rollbackRetryMs?: number;
  /** First wait between retries (default 250 ms; tests shorten it). */
  retryMinWaitMs?: number;
}

/** `rollback-unfinished`: a breach decided a rollback whose write never landed; the ramp stays `rolling-back`. */
export type RampOutcomeKind = 'completed' | 'rolled-back' | 'rollback-unfinished' | 'stopped' | 'interrupted' | 'lost-lease';

export interface RampOutcome {
  kind: RampOutcomeKind;
  doc: RampDoc;
  resumed: boolean;
  /** Step index this run began at. */
  startedAtStep: number;
  /** Percentages this run applied, in order. */
  applied: number[];
  readings: GuardReading[];
  breaches: GuardReading[];
  rolledBackTo?: number;
  drain?: DrainAnswer | { error: string };
  /** Whether the shim reported the rollback's percentage (when a shim admin client was given). */
  applyCheck?: ApplyCheck;
  message: string;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** A new running ramp at its first step, as `rollout ramp` records it (tests build theirs from it too). */
export function newRampDoc(plan: RampPlan, startPercent: number, owner: RampLease | null, now: Date): RampDoc {
  const at = now.toISOString();
  return {
    format: RAMP_FORMAT,
    version: 0,
    id: randomUUID(),
    plan,
    phase: 'running',
    stepIndex: 0,
    stepElapsedMs: 0,
    startPercent,
    lastGoodPercent: startPercent,
    percent: startPercent,
    paused: false,
    pausedBy: null,
    pausedAt: null,
    startedAt: at,
    updatedAt: at,
    finishedAt: null,
    outcome: null,
    breaches: [],
    owner,
    history: [{ at, event: 'started', percent: startPercent, detail: describePlan(plan) }],
  };
}

/** One line about who runs a ramp. */
export function describeOwner(doc: RampDoc, now = Date.now()): string {
  const o = doc.owner;
  if (!o) return 'no process';
  return `pid ${o.pid} on ${o.host}, heartbeat ${formatDuration(now - o.heartbeatAt)} ago`;
}

/** `step 2/5 (25%)`. */
export function describeStep(doc: Pick<RampDoc, 'plan' | 'stepIndex'>): string {
  const n = doc.plan.steps.length;
  const i = Math.min(doc.stepIndex, n - 1);
  return `step ${i + 1}/${n} (${doc.plan.steps[i]}%)`;
}

/** One line about where the Sync baseline comes from, or why it is skipped. */
export function describeSyncBaseline(scrape: Scrape): string {
  const failed = scrape.failures.find((f) => f.source === SYNC_SOURCE);
  if (failed) return `Sync baseline skipped: Sync metrics unreachable at ${scrape.syncMetricsUrl} (${failed.error}); request errors and p99 are judged against the absolute limits only`;
  return `Sync baseline: ${scrape.syncMetricsUrl} (request errors and p99 breach only when also worse than Sync's, once Sync carries --min-requests requests)`;
}

/** Ctrl-C (the signal) while waiting on a retry or on the shim: leave the ramp resumable. */
class Interrupted extends Error {}

class Stop extends Error {
  constructor(
    readonly kind: 'stopped' | 'lost-lease',
    readonly doc: RampDoc | null,
  ) {
    super(kind);
  }
}

/**
 * Where a breach at `stepPercent` rolls back to — always strictly below it
 * (except at 0%, where there is nothing lower): `--rollback-to` if below the
 * breaching step, else the last good step if below it, else 0%. (A first step
 * equal to the percentage the ramp started from has a "last good" equal to
 * itself: going back "there" would change nothing.)
 */
export function rollbackTarget(plan: Pick<RampPlan, 'rollbackTo'>, lastGoodPercent: number, stepPercent: number): { to: number; why: string } {
  if (plan.rollbackTo !== null && plan.rollbackTo < stepPercent) return { to: plan.rollbackTo, why: '--rollback-to' };
  const notBelow = plan.rollbackTo !== null ? `--rollback-to ${plan.rollbackTo}% is not below the breaching ${stepPercent}%` : null;
  if (lastGoodPercent < stepPercent) return { to: lastGoodPercent, why: notBelow ? `last good step; ${notBelow}` : 'last good step' };
  const why = [notBelow, `the last good step ${lastGoodPercent}% is not below the breaching ${stepPercent}%`].filter(Boolean).join('; ');
  return { to: 0, why };
}

/** History event a ramp process ended from elsewhere writes once it has stopped writing the flag (detail: its lease id). */
export const PROCESS_STOPPED_EVENT = 'process-stopped';

/** The same rollback decision (where to, from where, decided when). */
function sameRollback(a: PendingRollback | null | undefined, b: PendingRollback): boolean {
  return !!a && a.to === b.to && a.from === b.from && a.decidedAt === b.decidedAt;
}

export async function runRamp(req: RampRequest, deps: RampDeps): Promise<RampOutcome> {
  const { store, flag, reporter } = deps;
  const host = deps.host ?? hostname();
  const pid = deps.pid ?? process.pid;
  const staleMs = deps.leaseStaleMs ?? LEASE_STALE_MS;
  const me: RampLease = { id: randomUUID(), pid, host, process: processIdentity(pid), startedAt: new Date().toISOString(), heartbeatAt: Date.now() };

  const retryMs = deps.retryMs ?? ROUTINE_RETRY_MS;
  const onRetry = (line: string) => reporter.event(`retry: ${line}`);
  /** A routine call (flag read or write, store call), retried while its failure may be transient. */
  const routine = <T>(what: string, fn: () => Promise<T>): Promise<T> => retrying(what, fn, { forMs: retryMs, minWaitMs: deps.retryMinWaitMs, signal: deps.signal, onRetry });

  const flagNow = await routine('reading the flag', () => flag.read());

  type Acquired = { doc: RampDoc; resumed: boolean } | { refused: RampDoc } | { conflict: RampDoc } | { pendingRollback: RampDoc } | { below: number } | { nothing: RampDoc | null };
  const acquired = await routine(`updating the ramp state (${store.description})`, () => store.update<Acquired>((cur) => {
    const now = new Date();
    const lease = { ...me, heartbeatAt: now.getTime() };
    const u = unfinished(cur);
    // Already ours: this update is a retry of one whose reply was lost (it landed) — done, not refused.
    if (u && u.owner?.id === me.id) return { result: { doc: u, resumed: u.history[u.history.length - 1]?.event === 'resumed' } };
    if (u && leaseAlive(u.owner, { now: now.getTime(), host, staleMs })) return { result: { refused: u } };
    if (u && u.phase === 'rolling-back') {
      // A rollback that never landed is finished, never discarded (not even by --restart).
      if (!req.restart && (req.resume || (req.plan && samePlan(u.plan, req.plan)))) {
        const next = withEvent({ ...u, owner: lease, updatedAt: now.toISOString() }, { event: 'resumed', percent: u.percent, detail: `finishing the rollback to ${u.rollback?.to}%, by pid ${pid} on ${host}` }, now);
        return { next, result: { doc: next, resumed: true } };
      }
      return { result: { pendingRollback: u } };
    }
    if (u && !req.restart) {
      if (req.resume || (req.plan && samePlan(u.plan, req.plan))) {
        const next = withEvent({ ...u, owner: lease, updatedAt: now.toISOString() }, { event: 'resumed', percent: u.percent, detail: `by pid ${pid} on ${host}` }, now);
        return { next, result: { doc: next, resumed: true } };
      }
      return { result: { conflict: u } };
    }
    if (!req.plan) return { result: { nothing: cur } };
    // A ramp only moves forward: starting below the current percentage would move users back to Sync,
    // and its "last good" (the current percentage) would sit above its own steps.
    if (req.plan.steps[0]! < flagNow.percent) return { result: { below: flagNow.percent } };
    const next = newRampDoc(req.plan, flagNow.percent, lease, now);
    return { next, result: { doc: next, resumed: false } };
  }));
  if ('below' in acquired) {
    const steps = req.plan!.steps;
    const above = steps.filter((p) => p > acquired.below);
    throw new CliError(
      `the rollout is at ${acquired.below}% and the first step is ${steps[0]}%: a ramp only moves forward — give steps from ${acquired.below}% up${above.length ? ` (e.g. --steps ${above.join(',')})` : ''}, or lower the rollout first with \`bifrost rollout set\``,
      EXIT_USAGE,
    );
  }
  if ('pendingRollback' in acquired) {
    const u = acquired.pendingRollback;
    throw new CliError(
      `the ramp ${describePlan(u.plan)} breached at ${u.rollback?.from ?? u.percent}% and its rollback to ${u.rollback?.to}% is not confirmed written (the flag may still be at ${u.rollback?.from ?? u.percent}%): finish it with \`bifrost rollout ramp --resume\` (or go to 0% with \`bifrost rollout rollback\`) before starting another ramp`,
      EXIT_USAGE,
    );
  }
  if ('refused' in acquired) {
    const u = acquired.refused;
    throw new CliError(
      `another ramp is running (${describeOwner(u)}; at ${describeStep(u)}${u.paused ? ', paused' : ''}): only one ramp at a time — use \`bifrost rollout pause|resume\` to steer it or \`bifrost rollout rollback\` to stop it`,
      EXIT_USAGE,
    );
  }
  if ('conflict' in acquired) {
    const u = acquired.conflict;
    throw new CliError(
      `an unfinished ramp ${describePlan(u.plan)} stopped at ${describeStep(u)}: continue it with \`bifrost rollout ramp --resume\`, start this one instead with --restart, or end it with \`bifrost rollout rollback\``,
      EXIT_USAGE,
    );
  }
  if ('nothing' in acquired) {
    const last = acquired.nothing;
    throw new CliError(`no unfinished ramp to resume${last ? ` (the last one ${last.phase === 'completed' ? 'completed' : 'was rolled back'}: ${last.outcome ?? ''})` : ''}; start one with \`bifrost rollout ramp --steps … --interval …\``, EXIT_USAGE);
  }

  let doc = acquired.doc;
  const plan = doc.plan;
  const resumed = acquired.resumed;
  const startedAtStep = doc.stepIndex;
  const applied: number[] = [];
  const tickMs = deps.tickMs ?? clamp(plan.intervalMs / 10, 100, 1000);
  const sampleEveryMs = deps.sampleEveryMs ?? clamp(plan.intervalMs / 6, 250, 15_000);
  const limits = { maxErrorRate: plan.maxErrorRate, maxP99Ms: plan.maxP99Ms, minRequests: plan.minRequests };
  let readings: GuardReading[] = [];
  let baselineReported = false;

  const outcome = (kind: RampOutcomeKind, d: RampDoc, message: string, extra: Partial<RampOutcome> = {}): RampOutcome => ({
    kind,
    doc: d,
    resumed,
    startedAtStep,
    applied,
    readings,
    breaches: breaches(readings),
    message,
    ...extra,
  });

  /** Applies a change to our ramp document if we still own it and it still runs. */
  const mine = async (change: (cur: RampDoc) => RampDoc, alreadyDone?: (cur: RampDoc) => boolean): Promise<RampDoc> => {
    const r = await routine(`updating the ramp state (${store.description})`, () => store.update<{ doc: RampDoc } | { stop: Stop }>((cur) => {
      // This very change landed already (a retry after its reply was lost).
      if (cur && cur.id === doc.id && alreadyDone?.(cur)) return { result: { doc: cur } };
      // Ended from elsewhere (`rollout rollback` also clears the owner): stopped, not a lost lease.
      if (cur && cur.id === doc.id && cur.phase !== 'running') return { result: { stop: new Stop('stopped', cur) } };
      if (!cur || cur.id !== doc.id || cur.owner?.id !== me.id) return { result: { stop: new Stop('lost-lease', cur) } };
      const next = change(cur);
      return { next, result: { doc: next } };
    }));
    if ('stop' in r) throw r.stop;
    doc = { ...r.doc, version: r.doc.version + 1 };
    return doc;
  };

  /**
   * Checked right before EVERY attempt of a flag write (inside the retried
   * function, so a write retried for long never lands after the ramp was
   * ended): the ramp is still ours and in one of `phases`, else Stop. Each
   * check also refreshes the heartbeat, so the lease stays alive through long
   * write retries. `storeDown`: what to do when the store cannot be read —
   * 'fail' (a step write waits for the store: retried) or 'write' (a rollback
   * goes ahead: the store being down must not hold it up).
   */
  const stillMine = async (phases: readonly ('running' | 'rolling-back')[], storeDown: 'fail' | 'write'): Promise<void> => {
    const ongoing: readonly RampDoc['phase'][] = phases;
    let r: { ok: true } | { stop: Stop };
    try {
      r = await store.update<{ ok: true } | { stop: Stop }>((cur) => {
        if (cur && cur.id === doc.id && !ongoing.includes(cur.phase)) return { result: { stop: new Stop('stopped', cur) } };
        // Past the line above the same ramp is in one of `phases`: another owner (or another ramp, or none) = lease lost.
        if (!cur || cur.id !== doc.id || cur.owner?.id !== me.id) return { result: { stop: new Stop('lost-lease', cur) } };
        const now = Date.now();
        return { next: { ...cur, owner: { ...cur.owner, heartbeatAt: now }, updatedAt: new Date(now).toISOString() }, result: { ok: true } };
      });
    } catch (err) {
      if (storeDown === 'write') return;
      throw err;
    }
    if ('stop' in r) throw new AbortError(r.stop);
  };

  /**
   * Ended from elsewhere: record that this process has stopped writing (event
   * `process-stopped`, detail = our lease id), so `rollout rollback`, which
   * watches the flag for a late write, can stop watching early. Best effort.
   */
  const acknowledgeStop = async (): Promise<void> => {
    await store
      .update((cur) => (cur && cur.id === doc.id && cur.owner?.id !== me.id ? { next: withEvent(cur, { event: PROCESS_STOPPED_EVENT, detail: me.id }), result: null } : { result: null }))
      .catch(() => {});
  };

  /**
   * Gives up this process's lease (owner null, recording `event` when given —
   * a function of the stored document, or the event itself) if it still holds
   * it, so the ramp can be resumed. Best effort: the released document, or
   * null when the lease was not ours any more or the store failed.
   */
  const releaseLease = (event?: Omit<RampEvent, 'at'> | ((cur: RampDoc) => Omit<RampEvent, 'at'>)): Promise<RampDoc | null> =>
    store
      .update<RampDoc | null>((cur) => {
        if (!cur || cur.id !== doc.id || cur.owner?.id !== me.id) return { result: null };
        const released: RampDoc = { ...cur, owner: null };
        const next = event ? withEvent(released, typeof event === 'function' ? event(cur) : event) : released;
        return { next, result: next };
      })
      .catch(() => null);

  /** Persists the current readings, so the dashboard shows what the ramp decides on. */
  const publishReadings = (since: number): Promise<RampDoc> =>
    mine((cur) => ({ ...cur, readings: { stepIndex: cur.stepIndex, since, at: Date.now(), guards: readings } }));

  const view = (): RampView => ({
    stepIndex: doc.stepIndex,
    steps: plan.steps,
    stepElapsedMs: doc.stepElapsedMs,
    intervalMs: plan.intervalMs,
    timeLeftMs: timeLeftMs(doc),
    paused: doc.paused,
    readings,
  });

  const applyTimeoutMs = deps.applyTimeoutMs;
  /** Waits for the shim to report `percent`; null without an admin client. */
  const confirm = async (percent: number, bucketBy: FlagWriteResult['bucketBy'] | undefined): Promise<ApplyCheck | null> => {
    if (!deps.admin) return null;
    const c = await waitUntilApplied(deps.admin, flag, { percent, bucketBy }, { timeoutMs: applyTimeoutMs, signal: deps.signal });
    if (deps.signal?.aborted) throw new Interrupted();
    if (c.state === 'no-shim') reporter.event(`warning: ${c.message}`);
    return c;
  };

  if (doc.phase === 'rolling-back' && doc.rollback) {
    reporter.event(`finishing the unfinished rollback of the ramp ${describePlan(plan)}: ${doc.rollback.to}% (it breached at ${doc.rollback.from}%)`);
    try {
      return await finishRollback(doc.rollback, doc.breaches);
    } catch (err) {
      if (!(err instanceof Interrupted)) throw err;
      await releaseLease();
      return outcome('interrupted', doc, `interrupted while waiting for the shim; the rollback to ${doc.rollback.to}% was written — \`bifrost rollout ramp --resume\` records it and drains`);
    } finally {
      reporter.done();
    }
  }

  if (resumed) {
    reporter.event(`resuming the ramp ${describePlan(plan)} at ${describeStep(doc)}, ${formatDuration(doc.stepElapsedMs)} of ${formatDuration(plan.intervalMs)} already watched${doc.paused ? ' (paused)' : ''}`);
  } else {
    reporter.event(`ramp ${describePlan(plan)} from ${doc.startPercent}% on ${flag.description}`);
  }

  try {
    while (doc.stepIndex < plan.steps.length) {
      const target = plan.steps[doc.stepIndex]!;
      const current = await routine('reading the flag', () => flag.read());
      const bucketBy = plan.bucketBy ?? current.bucketBy;
      if (current.percent !== target || current.bucketBy !== bucketBy) {
        // Still ours and still running right before EVERY write attempt (`rollout rollback` may have ended the ramp meanwhile).
        const w = await routine(`writing ${target}% to ${flag.description}`, async () => {
          await stillMine(['running'], 'fail');
          return flag.write({ percent: target, bucketBy, comment: `bifrost rollout ramp: ${describeStep(doc)}` });
        });
        for (const n of w.notes) reporter.event(`note: ${n}`);
        for (const n of w.warnings ?? []) reporter.event(`warning: ${n}`);
      }
      applied.push(target);
      await mine((cur) => withEvent({ ...cur, percent: target, updatedAt: new Date().toISOString() }, { event: 'step', percent: target, detail: describeStep(cur) }));
      const check = await confirm(target, bucketBy);
      if (check?.state === 'not-applied') {
        readings = [{ guard: 'flag-not-applied', value: null, limit: null, baseline: null, events: 0, breached: true, text: check.message }];
        return await rollBack(breaches(readings));
      }
      reporter.event(`${describeStep(doc)}: ${target}% of ${bucketBy === 'team' ? 'teams' : 'users'} on Bifrost${check?.state === 'applied' ? ` (${check.replicas ? `all ${check.replicas.length} shim replicas` : 'the shim'} applied it after ${formatDuration(check.afterMs)})` : ''}; watching for ${formatDuration(plan.intervalMs - doc.stepElapsedMs)}`);

      const window = new MetricsWindow();
      const windowSince = Date.now();
      const firstScrape = await deps.sampler.scrape();
      window.add(firstScrape);
      readings = evaluateGuards(window.summary(), limits);
      await publishReadings(windowSince);
      if (!baselineReported && firstScrape.syncMetricsUrl) {
        baselineReported = true;
        reporter.event(describeSyncBaseline(firstScrape));
      }
      let lastTick = Date.now();
      let lastSample = lastTick;
      let wasPaused = doc.paused;
      for (;;) {
        try {
          await sleep(tickMs, undefined, { signal: deps.signal });
        } catch {
          // aborted (SIGINT/SIGTERM): leave the ramp resumable
          const d = await store.update<RampDoc | null>((cur) => {
            if (!cur || cur.id !== doc.id || cur.owner?.id !== me.id || cur.phase !== 'running') return { result: null };
            const next = withEvent({ ...cur, owner: null, updatedAt: new Date().toISOString() }, { event: 'interrupted', percent: cur.percent, detail: describeStep(cur) });
            return { next, result: next };
          });
          reporter.done();
          const at = d ?? doc;
          return outcome('interrupted', at, `ramp interrupted at ${describeStep(at)}; the rollout stays at ${at.percent}% — continue with \`bifrost rollout ramp --resume\``);
        }
        const now = Date.now();
        const dt = now - lastTick;
        lastTick = now;
        await mine((cur) => ({
          ...cur,
          stepElapsedMs: cur.paused ? cur.stepElapsedMs : cur.stepElapsedMs + dt,
          owner: { ...cur.owner!, heartbeatAt: now },
          updatedAt: new Date(now).toISOString(),
        }));
        if (doc.paused !== wasPaused) {
          wasPaused = doc.paused;
          reporter.event(doc.paused ? `paused${doc.pausedBy ? ` by ${doc.pausedBy}` : ''}: holding ${doc.percent}% until \`bifrost rollout resume\`` : `resumed: ${formatDuration(plan.intervalMs - doc.stepElapsedMs)} left at ${describeStep(doc)}`);
        }
        const stepDone = !doc.paused && doc.stepElapsedMs >= plan.intervalMs;
        if (stepDone || now - lastSample >= sampleEveryMs) {
          lastSample = now;
          window.add(await deps.sampler.scrape());
          const summary = window.summary();
          readings = evaluateGuards(summary, limits);
          const bad = breaches(readings);
          // The step's end: it passes only if Bifrost was actually seen (gateways read, traffic reached it).
          if (stepDone && bad.length === 0) readings = [...readings, ...stepEndGuards(summary, target, window.lastFailures, { bucketBy, minRequests: plan.minRequests })];
          // A breach rolls back first: a store that is down must not hold the rollback up.
          if (breaches(readings).length > 0) return await rollBack(breaches(readings));
          await publishReadings(windowSince);
        }
        reporter.tick(view());
        if (stepDone) break;
      }
      const passed = doc.stepIndex;
      // Absolute, not cur + 1: a retried update (its reply lost) must not skip a step.
      await mine((cur) =>
        withEvent({ ...cur, stepIndex: passed + 1, stepElapsedMs: 0, lastGoodPercent: target, updatedAt: new Date().toISOString() }, { event: 'step-passed', percent: target, detail: summarizeReadings(readings) }),
      );
      reporter.event(`${target}% held for ${formatDuration(plan.intervalMs)}: ${summarizeReadings(readings)}`);
    }
    const finishedAt = new Date().toISOString();
    const final = await mine(
      (cur) => withEvent({ ...cur, phase: 'completed', owner: null, finishedAt, updatedAt: finishedAt, outcome: `completed at ${cur.percent}%` }, { event: 'completed', percent: cur.percent }),
      (cur) => cur.phase === 'completed' && cur.finishedAt === finishedAt,
    );
    reporter.done();
    return outcome('completed', final, `ramp completed: ${final.percent}% on Bifrost`);
  } catch (err) {
    reporter.done();
    if (err instanceof Stop) {
      await acknowledgeStop();
      const d = err.doc ?? doc;
      if (err.kind === 'stopped') return outcome('stopped', d, `the ramp was ended from elsewhere (${d.outcome ?? d.phase}); this process stops without touching the flag`);
      return outcome('lost-lease', d, `this process lost the ramp's lease (${d ? describeOwner(d) : 'state gone'}); it stops without touching the flag`);
    }
    // Unexpected failure (flag write, store) after its retries, or Ctrl-C during one: release the lease so the ramp can be resumed.
    const interrupted = err instanceof Interrupted || deps.signal?.aborted === true;
    const released = await releaseLease((cur) => (interrupted ? { event: 'interrupted', percent: cur.percent, detail: describeStep(cur) } : { event: 'failed', detail: (err as Error).message }));
    if (interrupted) {
      const at = released ?? doc;
      return outcome('interrupted', at, `ramp interrupted at ${describeStep(at)}; the rollout stays at ${at.percent}% — continue with \`bifrost rollout ramp --resume\``);
    }
    if (err instanceof CliError) throw new CliError(`${err.message} — the ramp stopped at ${describeStep(doc)} with the rollout at ${doc.percent}%; continue it with \`bifrost rollout ramp --resume\` or end it with \`bifrost rollout rollback\``, err.exitCode);
    throw err;
  }

  async function rollBack(bad: GuardReading[]): Promise<RampOutcome> {
    const stepPercent = plan.steps[Math.min(doc.stepIndex, plan.steps.length - 1)]!;
    const { to, why } = rollbackTarget(plan, doc.lastGoodPercent, stepPercent);
    reporter.done();
    for (const b of bad) reporter.event(`guard breached at ${describeStep(doc)}: ${b.text}`);
    const message = `rolled back to ${to}% (${why}) after ${bad.map((b) => b.guard).join(', ')} breached at ${describeStep(doc)}`;
    const pending: PendingRollback = { to, from: stepPercent, message, decidedAt: new Date().toISOString() };
    // Record the decision first: if the write below never lands (or this process dies), --resume finishes it.
    try {
      const r = await routine(`recording the rollback (${store.description})`, () =>
        store.update<{ doc: RampDoc } | { stop: Stop }>((cur) => {
          // Already recorded by this very update (retried after its reply was lost): done.
          if (cur && cur.id === doc.id && cur.owner?.id === me.id && cur.phase === 'rolling-back' && sameRollback(cur.rollback, pending)) return { result: { doc: cur } };
          if (cur && cur.id === doc.id && cur.phase !== 'running') return { result: { stop: new Stop('stopped', cur) } };
          if (!cur || cur.id !== doc.id || cur.owner?.id !== me.id) return { result: { stop: new Stop('lost-lease', cur) } };
          const next = withEvent({ ...cur, phase: 'rolling-back', rollback: pending, breaches: bad, updatedAt: new Date().toISOString() }, { event: 'rolling-back', percent: to, detail: bad.map((b) => b.text).join('; ') });
          return { next, result: { doc: next } };
        }),
      );
      if ('stop' in r) throw r.stop;
      doc = { ...r.doc, version: r.doc.version + 1 };
    } catch (err) {
      if (err instanceof Stop) throw err; // ended elsewhere: its record and its flag write stand
      reporter.event(`warning: could not record the rollback in ${store.description} (${errorText(err)}); writing the flag anyway`);
    }
    return finishRollback(pending, bad);
  }

  /** Writes the rollback (retrying for long), waits for the shim to apply it, records it, drains. */
  async function finishRollback(pending: PendingRollback, bad: GuardReading[]): Promise<RampOutcome> {
    const { to } = pending;
    reporter.event(`rolling back to ${to}% on ${flag.description}`);
    let w: FlagWriteResult;
    try {
      w = await retrying(
        `writing the rollback to ${to}%`,
        async () => {
          // Before every attempt: stop if someone else took the ramp over meanwhile (`rollout rollback` ends it
          // and writes 0% itself); refresh the heartbeat. The store being down must not stop the rollback.
          await stillMine(['rolling-back', 'running'], 'write');
          // A rollback to 0% is everyone to Sync, like `rollout rollback` (live LaunchDarkly also turns targeting off).
          return flag.write({ percent: to, bucketBy: plan.bucketBy ?? undefined, comment: `bifrost rollout ramp: guard breached at ${pending.from}%, rolled back to ${to}%`, rollback: to === 0 });
        },
        { forMs: deps.rollbackRetryMs ?? ROLLBACK_RETRY_MS, all: true, minWaitMs: deps.retryMinWaitMs, signal: deps.signal, onRetry },
      );
    } catch (err) {
      if (err instanceof Stop) {
        await acknowledgeStop();
        const d = err.doc ?? doc;
        return outcome('stopped', d, `the ramp was ended from elsewhere (${d.outcome ?? d.phase}) while rolling back; this process stops without touching the flag`, { breaches: bad });
      }
      await releaseLease({ event: 'rollback-write-failed', percent: to, detail: errorText(err) });
      return outcome(
        'rollback-unfinished',
        doc,
        `could not write the rollback to ${to}% to ${flag.description} (${deps.signal?.aborted ? 'interrupted' : errorText(err)}): the rollout may still be at ${pending.from}% — the ramp is recorded as rolling back; \`bifrost rollout ramp --resume\` finishes it (or \`bifrost rollout rollback\` goes to 0%)`,
        { breaches: bad },
      );
    }
    for (const n of w.notes) reporter.event(`note: ${n}`);
    for (const n of w.warnings ?? []) reporter.event(`warning: ${n}`);
    const applyCheck = (await confirm(to, w.bucketBy)) ?? undefined;
    let final = doc;
    let elsewhere: RampDoc | null = null;
    try {
      const r = await routine(`recording the rollback (${store.description})`, () =>
        store.update<{ doc: RampDoc; elsewhere: boolean }>((cur) => {
          // Recorded by this very update already (retried after its reply was lost).
          if (cur && cur.id === doc.id && cur.phase === 'rolled-back' && sameRollback(cur.rollback, pending) && cur.outcome === pending.message) return { result: { doc: cur, elsewhere: false } };
          // Only our own rollback is recorded: still ours, still going where we went. Anything else (`rollout rollback`
          // ended it at 0%, another process took it over, the state was replaced) keeps its record.
          const ours = cur && cur.id === doc.id && cur.owner?.id === me.id && (cur.phase === 'running' || (cur.phase === 'rolling-back' && cur.rollback?.to === pending.to));
          if (!ours) return { result: { doc: cur ?? doc, elsewhere: true } };
          const base = cur;
          const next = withEvent(
            { ...base, phase: 'rolled-back', percent: w.percent, breaches: bad, rollback: pending, owner: null, finishedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), outcome: pending.message },
            { event: 'rolled-back', percent: w.percent, detail: bad.map((b) => b.text).join('; ') },
          );
          return { next, result: { doc: next, elsewhere: false } };
        }),
      );
      final = r.doc;
      if (r.elsewhere) elsewhere = r.doc;
    } catch (err) {
      reporter.event(`warning: the flag is at ${to}% but the ramp state could not be updated (${errorText(err)}); \`bifrost rollout ramp --resume\` records it`);
    }
    if (elsewhere) {
      await acknowledgeStop();
      // Not ours to record nor to drain: whoever ended it (`rollout rollback` re-checks the flag after a late write) drains.
      return outcome('stopped', elsewhere, `the ramp was ended from elsewhere (${elsewhere.outcome ?? elsewhere.phase}) while rolling back to ${to}%; its record stands and this process stops`, { breaches: bad, applyCheck });
    }
    // With an admin client there is always an apply check (confirm returns null only without one).
    const drain = deps.admin && applyCheck ? await drainIfApplied(deps.admin, applyCheck) : undefined;
    return outcome('rolled-back', final, pending.message, { rolledBackTo: to, drain, breaches: bad, applyCheck });
  }
}
