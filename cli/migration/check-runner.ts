/**
 * Running a squad's automated checks against the live stack: in dependency
 * order, each check's outcome recorded in the state store (a pass completes
 * the step when its dependencies are done), with a reporter that shows each
 * check as it runs (a spinner on a terminal, plain lines otherwise).
 */
import type { SquadMigration } from './catalog.ts';
import { stepParams } from './catalog.ts';
import { stepChecks } from './checks/index.ts';
import { dependencyOrder, type PlaybookStep } from './playbook.ts';
import type { CheckOutcome, StackEndpoints } from './step-check.ts';
import { stepRecord, type StateStore } from './state-store.ts';
import { recordCheck } from './step-transitions.ts';

export interface CheckRunResult {
  step: string;
  title: string;
  checkType: string;
  /** Why the check did not run, when it did not. */
  skipped?: 'done' | 'manual' | 'blocked';
  blockedBy?: string[];
  ok?: boolean;
  summary: string;
  output: string[];
  durationMs?: number;
  /** The step's status after the run. */
  status: 'done' | 'pending';
  /** What the run did to the step, in a sentence. */
  message: string;
}

export interface CheckReporter {
  /** Called before a check runs; returns a progress callback. */
  begin(step: PlaybookStep): (detail: string) => void;
  /** Called with the result of every step considered (run or skipped). */
  end(result: CheckRunResult): void;
}

export interface RunChecksOptions {
  sq: SquadMigration;
  store: StateStore;
  stack: StackEndpoints;
  /** One step (always run), or undefined for every automated step not done yet. */
  only?: PlaybookStep;
  /** Overrides of every check's parameters (e.g. timeoutMs from the command line). */
  paramOverrides?: Record<string, unknown>;
  reporter: CheckReporter;
}

async function runOne(opts: RunChecksOptions, step: PlaybookStep): Promise<CheckRunResult> {
  const { sq, store, stack } = opts;
  const check = stepChecks[step.check.type];
  // The step as the check found it: a pass completes it only if nobody completed or reopened it meanwhile.
  const seen = stepRecord(await store.read(sq.manifest.squad), step.id);
  // A result from before the step was last reopened or completed by hand says nothing about the
  // step as it is now: an accumulating check (canary) starts over after a reopen.
  const previous = seen.lastCheck && (!seen.at || seen.lastCheck.at >= seen.at) ? seen.lastCheck : undefined;
  const progress = opts.reporter.begin(step);
  const params = { ...stepParams(sq, step) };
  for (const [k, v] of Object.entries(opts.paramOverrides ?? {})) if (k in check.defaults && v !== undefined) params[k] = v;
  const started = performance.now();
  let outcome: CheckOutcome;
  try {
    outcome = await check.run({ squad: sq.manifest, step, params, stack, ...(previous ? { previous } : {}), progress });
  } catch (err) {
    outcome = { ok: false, summary: (err as Error).message, output: [] };
  }
  const durationMs = Math.round(performance.now() - started);
  const t = await store.update(sq.manifest.squad, recordCheck(sq, step, outcome, durationMs, undefined, seen));
  const result: CheckRunResult = {
    step: step.id,
    title: step.title,
    checkType: step.check.type,
    ok: outcome.ok,
    summary: outcome.summary,
    output: outcome.output,
    durationMs,
    status: t.record.status,
    message: t.message,
  };
  opts.reporter.end(result);
  return result;
}

/** Runs the checks; returns one result per step considered. */
export async function runChecks(opts: RunChecksOptions): Promise<CheckRunResult[]> {
  const { sq, store } = opts;
  if (opts.only) return [await runOne(opts, opts.only)];
  const results: CheckRunResult[] = [];
  for (const step of dependencyOrder(sq.playbook.steps)) {
    const state = await store.read(sq.manifest.squad);
    const base = { step: step.id, title: step.title, checkType: step.check.type, output: [] as string[] };
    if (stepRecord(state, step.id).status === 'done') {
      const r: CheckRunResult = { ...base, skipped: 'done', summary: 'already done', status: 'done', message: `${step.id} is done` };
      results.push(r);
      opts.reporter.end(r);
      continue;
    }
    if (step.manual) {
      const r: CheckRunResult = {
        ...base,
        skipped: 'manual',
        summary: `manual: bifrost migrate complete ${sq.manifest.squad} ${step.id} --by <you>${step.evidence === 'required' ? ' --evidence <link>' : ''}`,
        status: 'pending',
        message: `${step.id} is manual`,
      };
      results.push(r);
      opts.reporter.end(r);
      continue;
    }
    const blockedBy = step.dependsOn.filter((d) => stepRecord(state, d).status !== 'done');
    if (blockedBy.length > 0) {
      const r: CheckRunResult = { ...base, skipped: 'blocked', blockedBy, summary: `waiting on ${blockedBy.join(', ')}`, status: 'pending', message: `${step.id} is blocked` };
      results.push(r);
      opts.reporter.end(r);
      continue;
    }
    results.push(await runOne(opts, step));
  }
  return results;
}
