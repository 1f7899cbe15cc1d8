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
 * - `rollout rollback` ends the ramp (phase `rolled-back`); the runner sees it
 *   on its next tick and stops without touching the flag again;
 * - a killed runner leaves phase `running` with a dead lease; running the same
 *   command again (or `--resume`) takes the lease over and continues the same
 *   step with the time already watched;
 * - a second runner finds a live lease and is refused.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError, EXIT_USAGE } from '../output.ts';
import { processIdentity } from '../pid.ts';
import type { FlagTarget } from './flag-target.ts';
import { MetricsWindow, SYNC_SOURCE, type Scrape } from './metrics-window.ts';
import type { RampReporter, RampView } from './progress-bar.ts';
import { breaches, evaluateGuards, summarizeReadings, type GuardReading } from './ramp-guards.ts';
import { describePlan, formatDuration, samePlan, type RampPlan } from './ramp-plan.ts';
import { RAMP_FORMAT, leaseAlive, timeLeftMs, unfinished, withEvent, type RampDoc, type RampLease } from './ramp-state.ts';
import type { RampStore } from './ramp-store.ts';
import type { DrainAnswer, ShimAdminClient } from './shim-admin-client.ts';

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
  admin?: ShimAdminClient;
  signal?: AbortSignal;
  host?: string;
  pid?: number;
  /** A lease without a heartbeat for this long is dead (default 15 s). */
  leaseStaleMs?: number;
  /** Heartbeat / clock period (default interval/10, within 100 ms..1 s). */
  tickMs?: number;
  /** Metrics scrape period (default interval/6, within 250 ms..15 s). */
  sampleEveryMs?: number;
}

export type RampOutcomeKind = 'completed' | 'rolled-back' | 'stopped' | 'interrupted' | 'lost-lease';

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
  message: string;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

function newDoc(plan: RampPlan, startPercent: number, owner: RampLease, now: Date): RampDoc {
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

class Stop extends Error {
  constructor(
    readonly kind: 'stopped' | 'lost-lease',
    readonly doc: RampDoc | null,
  ) {
    super(kind);
  }
}

export async function runRamp(req: RampRequest, deps: RampDeps): Promise<RampOutcome> {
  const { store, flag, reporter } = deps;
  const host = deps.host ?? hostname();
  const pid = deps.pid ?? process.pid;
  const staleMs = deps.leaseStaleMs ?? 15_000;
  const me: RampLease = { id: randomUUID(), pid, host, process: processIdentity(pid), startedAt: new Date().toISOString(), heartbeatAt: Date.now() };

  const flagNow = await flag.read();

  type Acquired = { doc: RampDoc; resumed: boolean } | { refused: RampDoc } | { conflict: RampDoc } | { nothing: RampDoc | null };
  const acquired = await store.update<Acquired>((cur) => {
    const now = new Date();
    const lease = { ...me, heartbeatAt: now.getTime() };
    const u = unfinished(cur);
    if (u && leaseAlive(u.owner, { now: now.getTime(), host, staleMs })) return { result: { refused: u } };
    if (u && !req.restart) {
      if (req.resume || (req.plan && samePlan(u.plan, req.plan))) {
        const next = withEvent({ ...u, owner: lease, updatedAt: now.toISOString() }, { event: 'resumed', percent: u.percent, detail: `by pid ${pid} on ${host}` }, now);
        return { next, result: { doc: next, resumed: true } };
      }
      return { result: { conflict: u } };
    }
    if (!req.plan) return { result: { nothing: cur } };
    const next = newDoc(req.plan, flagNow.percent, lease, now);
    return { next, result: { doc: next, resumed: false } };
  });
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
  const mine = async (change: (cur: RampDoc) => RampDoc): Promise<RampDoc> => {
    const r = await store.update<{ doc: RampDoc } | { stop: Stop }>((cur) => {
      if (!cur || cur.id !== doc.id || cur.owner?.id !== me.id) return { result: { stop: new Stop('lost-lease', cur) } };
      if (cur.phase !== 'running') return { result: { stop: new Stop('stopped', cur) } };
      const next = change(cur);
      return { next, result: { doc: next } };
    });
    if ('stop' in r) throw r.stop;
    doc = { ...r.doc, version: r.doc.version + 1 };
    return doc;
  };

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

  if (resumed) {
    reporter.event(`resuming the ramp ${describePlan(plan)} at ${describeStep(doc)}, ${formatDuration(doc.stepElapsedMs)} of ${formatDuration(plan.intervalMs)} already watched${doc.paused ? ' (paused)' : ''}`);
  } else {
    reporter.event(`ramp ${describePlan(plan)} from ${doc.startPercent}% on ${flag.description}`);
  }

  try {
    while (doc.stepIndex < plan.steps.length) {
      const target = plan.steps[doc.stepIndex]!;
      const current = await flag.read();
      const bucketBy = plan.bucketBy ?? current.bucketBy;
      if (current.percent !== target || current.bucketBy !== bucketBy) {
        const w = await flag.write({ percent: target, bucketBy, comment: `bifrost rollout ramp: ${describeStep(doc)}` });
        for (const n of w.notes) reporter.event(`note: ${n}`);
      }
      applied.push(target);
      await mine((cur) => withEvent({ ...cur, percent: target, updatedAt: new Date().toISOString() }, { event: 'step', percent: target, detail: describeStep(cur) }));
      reporter.event(`${describeStep(doc)}: ${target}% of ${bucketBy === 'team' ? 'teams' : 'users'} on Bifrost; watching for ${formatDuration(plan.intervalMs - doc.stepElapsedMs)}`);

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
          await publishReadings(windowSince);
          const bad = breaches(readings);
          if (stepDone && bad.length === 0 && !summary.shimMeasured && summary.gatewaysMeasured === 0) {
            const why = window.lastFailures.map((f) => `${f.source}: ${f.error}`).join('; ') || 'no metrics sources';
            readings = [...readings, { guard: 'metrics-unavailable', value: null, limit: null, baseline: null, events: 0, breached: true, text: `no metrics could be read during the step (${why})` }];
          }
          if (breaches(readings).length > 0) return await rollBack(breaches(readings));
        }
        reporter.tick(view());
        if (stepDone) break;
      }
      await mine((cur) =>
        withEvent({ ...cur, stepIndex: cur.stepIndex + 1, stepElapsedMs: 0, lastGoodPercent: target, updatedAt: new Date().toISOString() }, { event: 'step-passed', percent: target, detail: summarizeReadings(readings) }),
      );
      reporter.event(`${target}% held for ${formatDuration(plan.intervalMs)}: ${summarizeReadings(readings)}`);
    }
    const final = await mine((cur) =>
      withEvent({ ...cur, phase: 'completed', owner: null, finishedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), outcome: `completed at ${cur.percent}%` }, { event: 'completed', percent: cur.percent }),
    );
    reporter.done();
    return outcome('completed', final, `ramp completed: ${final.percent}% on Bifrost`);
  } catch (err) {
    reporter.done();
    if (err instanceof Stop) {
      const d = err.doc ?? doc;
      if (err.kind === 'stopped') return outcome('stopped', d, `the ramp was ended from elsewhere (${d.outcome ?? d.phase}); this process stops without touching the flag`);
      return outcome('lost-lease', d, `this process lost the ramp's lease (${d ? describeOwner(d) : 'state gone'}); it stops without touching the flag`);
    }
    // Unexpected failure (flag write, store): release the lease so the ramp can be resumed.
    await store
      .update((cur) => (cur && cur.id === doc.id && cur.owner?.id === me.id ? { next: withEvent({ ...cur, owner: null }, { event: 'failed', detail: (err as Error).message }), result: null } : { result: null }))
      .catch(() => {});
    throw err;
  }

  async function rollBack(bad: GuardReading[]): Promise<RampOutcome> {
    const to = plan.rollbackTo ?? doc.lastGoodPercent;
    reporter.done();
    for (const b of bad) reporter.event(`guard breached at ${describeStep(doc)}: ${b.text}`);
    const w = await flag.write({ percent: to, bucketBy: plan.bucketBy ?? undefined, comment: `bifrost rollout ramp: guard breached at ${describeStep(doc)}, rolled back to ${to}%` });
    const message = `rolled back to ${to}% (${plan.rollbackTo !== null ? '--rollback-to' : 'last good step'}) after ${bad.map((b) => b.guard).join(', ')} breached at ${describeStep(doc)}`;
    const final = await store.update<RampDoc>((cur) => {
      // Ended meanwhile by `rollout rollback`: its record stands.
      if (cur && cur.id === doc.id && cur.phase !== 'running') return { result: cur };
      const base = cur && cur.id === doc.id ? cur : doc;
      const next = withEvent(
        { ...base, phase: 'rolled-back', percent: w.percent, breaches: bad, owner: null, finishedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), outcome: message },
        { event: 'rolled-back', percent: w.percent, detail: bad.map((b) => b.text).join('; ') },
      );
      return { next, result: next };
    });
    let drain: RampOutcome['drain'];
    if (deps.admin) {
      try {
        drain = await deps.admin.drain({ scope: 'changed' });
      } catch (err) {
        drain = { error: (err as Error).message };
      }
    }
    return outcome('rolled-back', final, message, { rolledBackTo: to, drain, breaches: bad });
  }
}
