/**
 * Where a squad stands: each step's state from the store, which steps are
 * blocked by unfinished dependencies, the next step, done/total and whether
 * the target date has passed. The model every view and report renders.
 */
import path from 'node:path';
import type { InvalidManifest, SquadMigration } from './catalog.ts';
import { formatProblem, type ConfigProblem } from './config-error.ts';
import { ownersLine } from './manifest.ts';
import { dependencyOrder } from './playbook.ts';
import { stepRecord, type CheckRecord, type SquadState } from './state-store.ts';

export interface StepProgress {
  id: string;
  title: string;
  checkType: string;
  manual: boolean;
  status: 'done' | 'pending';
  /** Dependencies not done yet (empty when the step can be worked on). */
  blockedBy: string[];
  dependsOn: string[];
  by?: string;
  at?: string;
  via?: 'check' | 'manual';
  evidence?: string;
  reason?: string;
  lastCheck?: CheckRecord;
}

export interface SquadProgress {
  squad: string;
  title?: string;
  owners: string;
  playbook: string;
  targetDate: string;
  done: number;
  total: number;
  /** First step, in dependency order, that is pending and unblocked (or null when all done). */
  nextStep: string | null;
  overdue: boolean;
  complete: boolean;
  steps: StepProgress[];
}

/** `today` as YYYY-MM-DD in UTC. */
export function todayUtc(now = new Date()): string {
  return now.toISOString().slice(0, 10);
}

export function squadProgress(sq: SquadMigration, state: SquadState, today = todayUtc()): SquadProgress {
  const ordered = dependencyOrder(sq.playbook.steps);
  const isDone = (id: string) => stepRecord(state, id).status === 'done';
  const steps: StepProgress[] = ordered.map((s) => {
    const r = stepRecord(state, s.id);
    return {
      id: s.id,
      title: s.title,
      checkType: s.check.type,
      manual: s.manual,
      status: r.status,
      blockedBy: s.dependsOn.filter((d) => !isDone(d)),
      dependsOn: s.dependsOn,
      ...(r.by !== undefined ? { by: r.by } : {}),
      ...(r.at !== undefined ? { at: r.at } : {}),
      ...(r.via !== undefined ? { via: r.via } : {}),
      ...(r.evidence !== undefined ? { evidence: r.evidence } : {}),
      ...(r.reason !== undefined ? { reason: r.reason } : {}),
      ...(r.lastCheck !== undefined ? { lastCheck: r.lastCheck } : {}),
    };
  });
  const done = steps.filter((s) => s.status === 'done').length;
  const next = steps.find((s) => s.status !== 'done' && s.blockedBy.length === 0) ?? steps.find((s) => s.status !== 'done');
  const complete = done === steps.length;
  return {
    squad: sq.manifest.squad,
    ...(sq.manifest.title !== undefined ? { title: sq.manifest.title } : {}),
    owners: ownersLine(sq.manifest),
    playbook: sq.playbook.name,
    targetDate: sq.manifest.targetDate,
    done,
    total: steps.length,
    nextStep: next?.id ?? null,
    overdue: !complete && sq.manifest.targetDate < today,
    complete,
    steps,
  };
}

/**
 * A squad manifest that cannot be used, as `list` and `report` show it: a row
 * with status "invalid manifest" and every problem, so one squad's mistake
 * never hides the others' progress (and is not hidden either).
 */
export interface InvalidSquadRow {
  /** The squad the file declares, or null when that cannot be read (see `file`). */
  squad: string | null;
  file: string;
  status: 'invalid manifest';
  /** Each problem, with `message` in the one-line form `file:line:col field: expected …`. */
  problems: Array<ConfigProblem & { message: string }>;
}

export function invalidSquadRow(i: InvalidManifest): InvalidSquadRow {
  return { squad: i.squad, file: i.file, status: 'invalid manifest', problems: i.problems.map((p) => ({ ...p, message: formatProblem(p) })) };
}

/** The name to show for an invalid manifest: its squad, else its file name without the extension. */
export function invalidRowName(r: InvalidSquadRow): string {
  return r.squad ?? path.basename(r.file).replace(/\.ya?ml$/, '');
}
