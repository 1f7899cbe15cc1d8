/**
 * Every squad's migration progress for the dashboard, read-only: the squad
 * manifests and playbooks (cli/migration/catalog.ts) and the step states from
 * the migration state store (`.bifrost/state.json`, or Redis when REDIS_URL is
 * set), folded by `squadProgress` — the same model `bifrost migrate list`
 * renders, so the page and the CLI never disagree.
 *
 * The catalog is re-read at most every `catalogTtlMs` (manifests change
 * rarely); states are read on every refresh. Nothing here writes.
 */
import { readCatalog, type InvalidManifest, type MigrationCatalog } from '../../cli/migration/catalog.ts';
import { formatProblem } from '../../cli/migration/config-error.ts';
import { openStateStore, DEFAULT_STATE_FILE } from '../../cli/migration/open-state-store.ts';
import { squadProgress } from '../../cli/migration/squad-progress.ts';
import type { StateStore } from '../../cli/migration/state-store.ts';

export interface SquadRow {
  squad: string;
  title: string | null;
  owners: string;
  targetDate: string;
  done: number;
  total: number;
  nextStep: string | null;
  nextStepTitle: string | null;
  overdue: boolean;
  complete: boolean;
}

export interface SquadBoard {
  squads: SquadRow[];
  /** Where the data came from, for the page's footnote. */
  source: string;
  /** Why squads could not be shown (no manifests, invalid manifests, unreadable state). */
  error: string | null;
}

export interface SquadBoardOptions {
  /** Default `BIFROST_MIGRATIONS_DIR` or `migrations` (relative to the working directory). */
  migrationsDir?: string;
  /** Default `BIFROST_PLAYBOOKS_DIR` or `playbooks`. */
  playbooksDir?: string;
  /** Default: `openStateStore` with `BIFROST_STATE_FILE` or `.bifrost/state.json` (Redis when REDIS_URL is set). */
  store?: StateStore;
  /** Default 10 000 ms. */
  catalogTtlMs?: number;
  env?: NodeJS.ProcessEnv;
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!;
}

function invalidSummary(invalid: InvalidManifest[]): string | null {
  if (invalid.length === 0) return null;
  const each = invalid.map((m) => (m.problems[0] ? formatProblem(m.problems[0]) : m.file));
  return `${invalid.length} squad manifest(s) invalid, not shown (see \`bifrost migrate list\`): ${each.join('; ')}`;
}

export class SquadBoardReader {
  private readonly migrationsDir: string;
  private readonly playbooksDir: string;
  private readonly store: StateStore;
  private readonly ownsStore: boolean;
  private readonly catalogTtlMs: number;
  private catalog: { at: number; value: MigrationCatalog | null; error: string | null } | undefined;

  constructor(opts: SquadBoardOptions = {}) {
    const env = opts.env ?? process.env;
    this.migrationsDir = opts.migrationsDir ?? env.BIFROST_MIGRATIONS_DIR ?? 'migrations';
    this.playbooksDir = opts.playbooksDir ?? env.BIFROST_PLAYBOOKS_DIR ?? 'playbooks';
    this.ownsStore = !opts.store;
    this.store = opts.store ?? openStateStore({ stateFile: env.BIFROST_STATE_FILE || DEFAULT_STATE_FILE, env });
    this.catalogTtlMs = opts.catalogTtlMs ?? 10_000;
  }

  private async loadCatalog(now: number): Promise<{ value: MigrationCatalog | null; error: string | null }> {
    if (this.catalog && now - this.catalog.at < this.catalogTtlMs) return this.catalog;
    try {
      // One squad's broken manifest hides only that squad (as in `bifrost migrate list`); the others are shown.
      const value = await readCatalog({ migrationsDir: this.migrationsDir, playbooksDir: this.playbooksDir });
      this.catalog = { at: now, value, error: invalidSummary(value.invalid) };
    } catch (err) {
      this.catalog = { at: now, value: null, error: `squad manifests in ${this.migrationsDir}: ${firstLine(err)}` };
    }
    return this.catalog;
  }

  /** Reads every squad's progress. Never throws: problems come back in `error`. */
  async read(now = new Date()): Promise<SquadBoard> {
    const source = `${this.migrationsDir}/*.yaml, state in ${this.store.description}`;
    const catalog = await this.loadCatalog(now.getTime());
    if (!catalog.value) return { squads: [], source, error: catalog.error };
    const today = now.toISOString().slice(0, 10);
    try {
      const squads = await Promise.all(
        catalog.value.squads.map(async (sq) => {
          const p = squadProgress(sq, await this.store.read(sq.manifest.squad), today);
          const next = p.nextStep ? p.steps.find((s) => s.id === p.nextStep) : undefined;
          return {
            squad: p.squad,
            title: p.title ?? null,
            owners: p.owners,
            targetDate: p.targetDate,
            done: p.done,
            total: p.total,
            nextStep: p.nextStep,
            nextStepTitle: next?.title ?? null,
            overdue: p.overdue,
            complete: p.complete,
          };
        }),
      );
      return { squads, source, error: catalog.error };
    } catch (err) {
      return { squads: [], source, error: `migration state (${this.store.description}): ${firstLine(err)}` };
    }
  }

  async close(): Promise<void> {
    if (this.ownsStore) await this.store.close().catch(() => undefined);
  }
}
