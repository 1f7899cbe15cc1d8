/**
 * The file state store: `.bifrost/state.json` holds every squad's step states
 * and the audit trail. Concurrent processes serialize on a lock
 * (proper-lockfile: an atomic mkdir of `<file>.lock`, refreshed while held,
 * taken over when stale); every write goes to a temporary file that is
 * fsynced and renamed over the state file, so a reader never sees half a file,
 * and then the directory is fsynced, so the rename itself (the new name's
 * directory entry, the file's very creation on the first write) is on disk
 * before the command says the step is recorded.
 * A state file that cannot be parsed is refused and never overwritten.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import lockfile from 'proper-lockfile';
import { CliError, EXIT_USAGE } from '../output.ts';
import {
  applyChanges,
  auditEntries,
  emptySquadState,
  stepRecordProblem,
  type AuditEntry,
  type Decision,
  type SquadState,
  type StateStore,
} from './state-store.ts';

const FORMAT = 'bifrost-migration-state';

/**
 * What platforms and file systems answer when they do not support fsync on a
 * directory (Windows cannot open one: EISDIR; some file systems refuse the
 * call: EINVAL, ENOTSUP). Nothing more can be done there; any other error is
 * a real failure and is raised.
 */
const DIR_FSYNC_UNSUPPORTED = new Set(['EINVAL', 'EISDIR', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Flushes a directory's entries (a rename or create in it) to disk: open it
 * read-only, fsync, close. Exported for the tests.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(dir, 'r');
  } catch (err) {
    if (DIR_FSYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) return;
    throw err;
  }
  try {
    await fh.sync();
  } catch (err) {
    if (!DIR_FSYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await fh.close();
  }
}

interface StateFile {
  format: typeof FORMAT;
  version: 1;
  squads: Record<string, { steps: SquadState['steps']; version: number }>;
  audit: AuditEntry[];
}

export interface FileStateStoreOptions {
  /** A lock older than this (not refreshed by a live holder) is taken over. Default 10 s. */
  lockStaleMs?: number;
  /** How long to keep retrying to get the lock before giving up. Default 30 s. */
  lockWaitMs?: number;
}

/** The state file exists but is not a valid state document. */
export class CorruptStateError extends CliError {
  constructor(file: string, what: string) {
    super(
      `state file ${file} is corrupt (${what}); it was left untouched. Restore it from a backup or move it away to start over (it also holds the audit trail).`,
      EXIT_USAGE,
    );
    this.name = 'CorruptStateError';
  }
}

function parseStateFile(file: string, text: string): StateFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new CorruptStateError(file, `not JSON: ${(err as Error).message}`);
  }
  const d = data as Partial<StateFile>;
  if (typeof data !== 'object' || data === null || d.format !== FORMAT || d.version !== 1) {
    throw new CorruptStateError(file, `expected {"format":"${FORMAT}","version":1,...}`);
  }
  if (typeof d.squads !== 'object' || d.squads === null || !Array.isArray(d.audit)) {
    throw new CorruptStateError(file, 'expected "squads" to be an object and "audit" a list');
  }
  for (const [squad, s] of Object.entries(d.squads)) {
    if (typeof s !== 'object' || s === null || typeof s.version !== 'number' || typeof s.steps !== 'object' || s.steps === null) {
      throw new CorruptStateError(file, `squad "${squad}" must be {steps, version}`);
    }
    for (const [step, rec] of Object.entries(s.steps)) {
      const p = stepRecordProblem(rec);
      if (p) throw new CorruptStateError(file, `squad "${squad}" step "${step}": ${p}`);
    }
  }
  return d as StateFile;
}

export class FileStateStore implements StateStore {
  readonly description: string;
  private readonly lockStaleMs: number;
  private readonly lockWaitMs: number;

  constructor(
    readonly file: string,
    opts: FileStateStoreOptions = {},
  ) {
    this.description = `file ${file}`;
    this.lockStaleMs = opts.lockStaleMs ?? 10_000;
    this.lockWaitMs = opts.lockWaitMs ?? 30_000;
  }

  private async load(): Promise<StateFile> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { format: FORMAT, version: 1, squads: {}, audit: [] };
      throw new CliError(`cannot read state file ${this.file}: ${(err as Error).message}`, EXIT_USAGE);
    }
    return parseStateFile(this.file, text);
  }

  private async writeAtomically(data: StateFile): Promise<void> {
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(JSON.stringify(data, null, 2) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // Without this, a power loss right after the command returns can bring back the old
    // state file (or none, on the first write): the rename lives in the directory.
    try {
      await syncDirectory(path.dirname(path.resolve(this.file)));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw Object.assign(new Error(`${this.file} was written but its directory could not be synced to disk (${e.code ?? e.message}): the change may not survive a power loss`), { code: e.code });
    }
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const dir = path.dirname(path.resolve(this.file));
    const made = await mkdir(dir, { recursive: true });
    // Directories made just now (`.bifrost/` on the first write) last only once their parents are synced.
    if (made) {
      for (let d = dir; ; d = path.dirname(d)) {
        await syncDirectory(path.dirname(d));
        if (d === made || path.dirname(d) === d) break;
      }
    }
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.file, {
        realpath: false,
        lockfilePath: `${this.file}.lock`,
        stale: this.lockStaleMs,
        // ~lockWaitMs of retries with jittered backoff between 5 and 100 ms.
        retries: { retries: Math.ceil(this.lockWaitMs / 50), minTimeout: 5, maxTimeout: 100, factor: 1.3, randomize: true },
      });
    } catch (err) {
      throw new CliError(`could not lock ${this.file} (${(err as Error).message}): another bifrost process holds it; retry in a moment`, EXIT_USAGE);
    }
    try {
      return await fn();
    } finally {
      await release().catch(() => {});
    }
  }

  async read(squad: string): Promise<SquadState> {
    const data = await this.load();
    const s = data.squads[squad];
    return s ? { squad, steps: s.steps, version: s.version } : emptySquadState(squad);
  }

  async update<T>(squad: string, decide: (current: SquadState) => Decision<T>): Promise<T> {
    return this.withLock(async () => {
      const data = await this.load();
      const s = data.squads[squad];
      const current: SquadState = s ? { squad, steps: s.steps, version: s.version } : emptySquadState(squad);
      const { changes, result } = decide(current);
      if (changes.length === 0) return result;
      const next = applyChanges(current, changes);
      data.squads[squad] = { steps: next.steps, version: next.version };
      data.audit.push(...auditEntries(squad, current, changes, new Date().toISOString()));
      await this.writeAtomically(data);
      return result;
    });
  }

  async audit(opts: { squad?: string; limit?: number } = {}): Promise<AuditEntry[]> {
    const data = await this.load();
    const all = opts.squad ? data.audit.filter((e) => e.squad === opts.squad) : data.audit;
    return opts.limit ? all.slice(-opts.limit) : all;
  }

  async close(): Promise<void> {}
}
