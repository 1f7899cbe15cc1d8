/**
 * The rules of a step's life, as pure decisions handed to `StateStore.update`:
 * complete (by a person, with evidence when the playbook asks), reopen (with
 * a reason), and record a check result (which completes the step, by
 * `check`, when it passes and the step's dependencies are done).
 */
import { CliError, EXIT_USAGE } from '../output.ts';
import type { SquadMigration } from './catalog.ts';
import type { PlaybookStep } from './playbook.ts';
import type { CheckOutcome } from './step-check.ts';
import { stepRecord, type Decision, type SquadState, type StepRecord } from './state-store.ts';

export const CHECK_ACTOR = 'check';

export interface TransitionResult {
  changed: boolean;
  step: string;
  previous: StepRecord;
  record: StepRecord;
  /** A sentence for people. */
  message: string;
}

function pendingDependencies(step: PlaybookStep, state: SquadState): string[] {
  return step.dependsOn.filter((d) => stepRecord(state, d).status !== 'done');
}

export function completeStep(
  sq: SquadMigration,
  step: PlaybookStep,
  who: { by: string; evidence?: string },
  now = () => new Date().toISOString(),
): (state: SquadState) => Decision<TransitionResult> {
  if (step.evidence === 'required' && !who.evidence) {
    throw new CliError(`step "${step.id}" needs evidence: add --evidence <link or text> (e.g. the merged pull request)`, EXIT_USAGE);
  }

  return (state) => {
    const previous = stepRecord(state, step.id);
    if (previous.status === 'done') {
      return {
        changes: [],
        result: { changed: false, step: step.id, previous, record: previous, message: `${sq.manifest.squad}/${step.id} is already done (by ${previous.by ?? '?'} at ${previous.at ?? '?'}); nothing changed` },
      };
    }
    const waiting = pendingDependencies(step, state);
    if (waiting.length > 0) {
      throw new CliError(`cannot complete ${sq.manifest.squad}/${step.id}: it depends on ${waiting.join(', ')}, not done yet`, EXIT_USAGE);
    }
    if (!step.manual && !who.evidence) {
      // An automated step done by hand: its check did not say so, a person must say how they know.
      throw new CliError(
        `step "${step.id}" is automated (check ${step.check.type}): run \`bifrost migrate check ${sq.manifest.squad} ${step.id}\`, or, to complete it by hand, say how it was verified with --evidence <link or text>`,
        EXIT_USAGE,
      );
    }
    const record: StepRecord = {
      status: 'done',
      by: who.by,
      at: now(),
      via: 'manual',
      ...(who.evidence ? { evidence: who.evidence } : {}),
      ...(previous.lastCheck ? { lastCheck: previous.lastCheck } : {}),
    };
    return {
      changes: [{ step: step.id, action: 'complete', by: who.by, ...(who.evidence ? { evidence: who.evidence } : {}), next: record }],
      result: { changed: true, step: step.id, previous, record, message: `${sq.manifest.squad}/${step.id} done, by ${who.by}` },
    };
  };
}

export function reopenStep(
  sq: SquadMigration,
  step: PlaybookStep,
  who: { by: string; reason: string },
  now = () => new Date().toISOString(),
): (state: SquadState) => Decision<TransitionResult & { doneDependents: string[] }> {
  if (!who.reason.trim()) throw new CliError('reopen needs a reason: --reason <text>', EXIT_USAGE);
  return (state) => {
    const previous = stepRecord(state, step.id);
    const doneDependents = sq.playbook.steps.filter((s) => s.dependsOn.includes(step.id) && stepRecord(state, s.id).status === 'done').map((s) => s.id);
    if (previous.status !== 'done') {
      return {
        changes: [],
        result: { changed: false, step: step.id, previous, record: previous, doneDependents, message: `${sq.manifest.squad}/${step.id} is not done; nothing to reopen` },
      };
    }
    const record: StepRecord = { status: 'pending', by: who.by, at: now(), reason: who.reason, ...(previous.lastCheck ? { lastCheck: previous.lastCheck } : {}) };
    return {
      changes: [{ step: step.id, action: 'reopen', by: who.by, reason: who.reason, next: record }],
      result: { changed: true, step: step.id, previous, record, doneDependents, message: `${sq.manifest.squad}/${step.id} reopened by ${who.by}: ${who.reason}` },
    };
  };
}

/** Whether two records of a step are the same transition (status, who, when, how), whatever their last check. */
export function sameTransition(a: StepRecord, b: StepRecord): boolean {
  return a.status === b.status && a.by === b.by && a.at === b.at && a.via === b.via && a.reason === b.reason && a.evidence === b.evidence;
}

/**
 * Records a check result. `seen` is the step's record when the check started:
 * when a person completed or reopened the step while the check ran, a pass
 * does not complete it (the result is recorded, and the message says so):
 * a result from before a reopen must not undo it.
 */
export function recordCheck(
  sq: SquadMigration,
  step: PlaybookStep,
  outcome: CheckOutcome,
  durationMs: number,
  now = () => new Date().toISOString(),
  seen?: StepRecord,
): (state: SquadState) => Decision<TransitionResult & { waitingOn: string[]; changedMeanwhile: boolean }> {
  return (state) => {
    const previous = stepRecord(state, step.id);
    const changedMeanwhile = seen !== undefined && !sameTransition(seen, previous);
    const at = now();
    const lastCheck = {
      ok: outcome.ok,
      at,
      summary: outcome.summary,
      output: outcome.output,
      durationMs,
      ...(outcome.data ? { data: outcome.data } : {}),
    };
    const waitingOn = pendingDependencies(step, state);
    const completes = outcome.ok && previous.status !== 'done' && waitingOn.length === 0 && !changedMeanwhile;
    const record: StepRecord = completes ? { status: 'done', by: CHECK_ACTOR, at, via: 'check', lastCheck } : { ...previous, lastCheck };
    const meanwhile = `${previous.status === 'done' ? 'completed' : 'reopened'} by ${previous.by ?? '?'} at ${previous.at ?? '?'}${previous.reason ? ` (${previous.reason})` : ''}`;
    const message = completes
      ? `${sq.manifest.squad}/${step.id} passed and is now done`
      : outcome.ok && changedMeanwhile && previous.status !== 'done'
        ? `${sq.manifest.squad}/${step.id} passed, but the step was ${meanwhile} while the check ran: this result is recorded and does not complete it; run the check again`
      : outcome.ok
        ? previous.status === 'done'
          ? `${sq.manifest.squad}/${step.id} passed (already done)`
          : `${sq.manifest.squad}/${step.id} passed, but stays pending until ${waitingOn.join(', ')} ${waitingOn.length > 1 ? 'are' : 'is'} done`
        : `${sq.manifest.squad}/${step.id} failed${previous.status === 'done' ? ' (the step stays done; look into it or reopen it)' : ''}`;
    return {
      changes: [{ step: step.id, action: completes ? 'complete' : 'check', by: CHECK_ACTOR, next: record }],
      result: { changed: true, step: step.id, previous, record, waitingOn, changedMeanwhile, message },
    };
  };
}
