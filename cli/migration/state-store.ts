/**
 * Migration progress: the state of every step of every squad, and an
 * append-only audit trail of each change (who, when, what, evidence, the
 * previous state). One interface, two stores side by side:
 * `state-store-file.ts` (`.bifrost/state.json`, lock + atomic rename) and
 * `state-store-redis.ts` (hash per squad + audit stream, Lua compare-and-set).
 *
 * Every change goes through `update(squad, decide)`: the store hands `decide`
 * the squad's current state and applies the changes it returns atomically.
 * `decide` must be pure: a store may call it again after a concurrent write.
 */

/** Where the file store keeps state unless told otherwise (`--state-file`). */
export const DEFAULT_STATE_FILE = '.bifrost/state.json';

export type StepStatus = 'pending' | 'done';

/** The recorded result of one run of a step's automated check. */
export interface CheckRecord {
  ok: boolean;
  at: string;
  summary: string;
  output: string[];
  durationMs: number;
  data?: Record<string, unknown>;
}

export interface StepRecord {
  status: StepStatus;
  /** Who moved the step to its current status (`check` for automated completion). */
  by?: string;
  at?: string;
  via?: 'check' | 'manual';
  evidence?: string;
  /** Set by `reopen`: the reason the step is pending again. */
  reason?: string;
  lastCheck?: CheckRecord;
}

export interface SquadState {
  squad: string;
  /** Step id → record; a step never touched is absent (pending). */
  steps: Record<string, StepRecord>;
  /** Increases with every applied change set. */
  version: number;
}

export type AuditAction = 'complete' | 'reopen' | 'check';

/** One change a caller asks for. */
export interface StepChange {
  step: string;
  action: AuditAction;
  by: string;
  evidence?: string;
  reason?: string;
  next: StepRecord;
}

/** One entry of the audit trail. */
export interface AuditEntry extends StepChange {
  squad: string;
  at: string;
  previous: StepRecord | null;
}

export interface Decision<T> {
  changes: StepChange[];
  result: T;
}

export interface StateStore {
  /** Where the state lives, for messages (`file .bifrost/state.json`, `redis bifrost:migrations:`). */
  readonly description: string;
  read(squad: string): Promise<SquadState>;
  /** Applies the changes `decide` returns, atomically with respect to every other writer. */
  update<T>(squad: string, decide: (current: SquadState) => Decision<T>): Promise<T>;
  /** The audit trail, oldest first (optionally one squad's, optionally the last `limit`). */
  audit(opts?: { squad?: string; limit?: number }): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

export function emptySquadState(squad: string): SquadState {
  return { squad, steps: {}, version: 0 };
}

export function stepRecord(state: SquadState, step: string): StepRecord {
  return state.steps[step] ?? { status: 'pending' };
}

/** Fills in `at` and `previous` for a change set, as every store records it. */
export function auditEntries(squad: string, current: SquadState, changes: StepChange[], at: string): AuditEntry[] {
  return changes.map((c) => ({ ...c, squad, at, previous: current.steps[c.step] ?? null }));
}

/** Returns the state after applying a change set (pure). */
export function applyChanges(current: SquadState, changes: StepChange[]): SquadState {
  const steps = { ...current.steps };
  for (const c of changes) steps[c.step] = c.next;
  return { squad: current.squad, steps, version: current.version + 1 };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks the shape of a stored step record; returns what is wrong, or null. */
export function stepRecordProblem(v: unknown): string | null {
  if (!isObject(v)) return 'a step record must be an object';
  if (v.status !== 'pending' && v.status !== 'done') return `status must be "pending" or "done", got ${JSON.stringify(v.status)}`;
  for (const k of ['by', 'at', 'evidence', 'reason'] as const) {
    if (v[k] !== undefined && typeof v[k] !== 'string') return `${k} must be a string`;
  }
  if (v.lastCheck !== undefined && (!isObject(v.lastCheck) || typeof v.lastCheck.ok !== 'boolean' || typeof v.lastCheck.at !== 'string')) {
    return 'lastCheck must be {ok, at, summary, output, durationMs}';
  }
  return null;
}
