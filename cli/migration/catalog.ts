/**
 * The migration catalog: every squad manifest in the migrations directory
 * with the playbook it follows. Problems across files (a missing playbook,
 * stepOptions for an unknown step, the same squad name in two files) are
 * reported with the rest, all at once.
 *
 * One squad's broken manifest does not stop the others: `readCatalog` keeps
 * it aside as an `InvalidManifest` (with its problems and, when that much can
 * be read, the squad it belongs to) and returns every valid squad. What stays
 * fatal for everyone (a ConfigError): an unreadable or empty migrations
 * directory, and a broken playbook (every squad following it would be judged
 * against it). `loadCatalog` is the strict form: any problem at all throws.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, formatProblem, sortProblems, type ConfigProblem } from './config-error.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import { manifestSchema, readManifest, type SquadManifest } from './manifest.ts';
import { readPlaybook, type Playbook, type PlaybookStep } from './playbook.ts';
import { schemaProblems, YamlSource } from './yaml-source.ts';
import { stepChecks } from './checks/index.ts';

/** A squad with its playbook resolved: what every command works on. */
export interface SquadMigration {
  manifest: SquadManifest;
  playbook: Playbook;
}

/** A manifest file that cannot be used, and every problem found in it. */
export interface InvalidManifest {
  file: string;
  /** The squad the file declares, when its `squad` field could be read and is a valid name; null otherwise. */
  squad: string | null;
  /**
   * When `squad` is null: the squads the file might belong to — its file name
   * (`<squad>.yaml` by convention) and any name written after a `squad:` key
   * in its text (lower-cased), even where the YAML does not parse.
   */
  couldBe: string[];
  problems: ConfigProblem[];
}

export interface MigrationCatalog {
  /** The usable squads, in file-name order. */
  squads: SquadMigration[];
  playbooks: Map<string, Playbook>;
  /** Manifests that cannot be used, in file-name order (empty when all are valid). */
  invalid: InvalidManifest[];
}

export interface CatalogOptions {
  migrationsDir: string;
  playbooksDir: string;
}

async function yamlFiles(dir: string, what: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new ConfigError([{ file: dir, line: 0, column: 0, field: '', expected: `a readable ${what} directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` }]);
  }
  return names.filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => path.join(dir, n));
}

const SQUAD_NAME = new RegExp(manifestSchema.properties.squad.pattern);
/** A `squad:` key (block or flow style, quoted or not) and the word after it. */
const SQUAD_LINE = /(?:^|[{,])[ \t]*["']?squad["']?[ \t]*:[ \t]*["']?([A-Za-z0-9_-]+)/gm;

/** What a broken manifest says about its squad: the name when valid, else the candidates. */
function squadHints(file: string, text: string | undefined, value: unknown): { squad: string | null; couldBe: string[] } {
  const declared = typeof value === 'object' && value !== null ? (value as Record<string, unknown>).squad : undefined;
  if (typeof declared === 'string' && SQUAD_NAME.test(declared)) return { squad: declared, couldBe: [] };
  const couldBe = new Set([path.basename(file).replace(/\.ya?ml$/, '')]);
  for (const m of (text ?? '').matchAll(SQUAD_LINE)) couldBe.add(m[1]!.toLowerCase());
  return { squad: null, couldBe: [...couldBe] };
}

/** One manifest file read and checked on its own. */
interface ReadManifestFile {
  file: string;
  manifest?: SquadManifest;
  squad: string | null;
  couldBe: string[];
  problems: ConfigProblem[];
  /** The parsed file, when it parses (to locate its `squad` key). */
  source?: YamlSource;
}

async function readManifestFile(file: string): Promise<ReadManifestFile> {
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { file, ...squadHints(file, undefined, undefined), problems: [{ file, line: 0, column: 0, field: '', expected: `a readable file (${(err as Error).message})` }] };
  }
  let source: YamlSource;
  try {
    source = YamlSource.parse(file, text);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { file, ...squadHints(file, text, undefined), problems: err.problems };
  }
  const { manifest, problems } = readManifest(source);
  if (manifest) return { file, manifest, squad: manifest.squad, couldBe: [], problems: [], source };
  return { file, ...squadHints(file, text, source.value), problems, source };
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    return true; // there, but not readable: loading it says why
  }
}

/**
 * Loads every manifest and the playbooks they name. Returns the valid squads
 * and the invalid manifests; throws a ConfigError only for what concerns every
 * squad (the migrations directory unreadable or empty, a broken playbook), then
 * listing every problem found, the manifests' too.
 */
export async function readCatalog(opts: CatalogOptions): Promise<MigrationCatalog> {
  const files = await yamlFiles(opts.migrationsDir, 'migrations');
  if (files.length === 0) {
    throw new ConfigError([{ file: opts.migrationsDir, line: 0, column: 0, field: '', expected: 'at least one squad manifest <squad>.yaml' }]);
  }
  const entries: ReadManifestFile[] = [];
  for (const file of files) entries.push(await readManifestFile(file));

  // Playbooks: a missing one is the manifest's mistake (it names a playbook
  // that does not exist); a broken one concerns every squad, so it is fatal.
  const playbooks = new Map<string, Playbook>();
  const failedPlaybooks = new Set<string>();
  const playbookProblems: ConfigProblem[] = [];
  for (const e of entries) {
    const m = e.manifest;
    if (!m) continue;
    const file = path.join(opts.playbooksDir, `${m.playbook}.yaml`);
    let playbook = playbooks.get(m.playbook);
    if (!playbook && !failedPlaybooks.has(m.playbook)) {
      if (!(await fileExists(file))) {
        e.problems.push(m.source.problem(['playbook'], `expected a playbook that exists, but ${file} cannot be read`));
        continue;
      }
      try {
        const r = readPlaybook(await YamlSource.load(file));
        playbookProblems.push(...r.problems);
        if (r.playbook) {
          playbook = r.playbook;
          playbooks.set(m.playbook, playbook);
        } else failedPlaybooks.add(m.playbook);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        failedPlaybooks.add(m.playbook);
        playbookProblems.push(...err.problems);
      }
    }
    if (!playbook) continue;
    const stepIds = playbook.steps.map((s) => s.id);
    for (const [stepId, params] of Object.entries(m.stepOptions)) {
      const step = playbook.steps.find((s) => s.id === stepId);
      if (!step) {
        e.problems.push(m.source.problem(['stepOptions', stepId], `expected a step of playbook "${playbook.name}" (${stepIds.join(', ')}), got unknown step "${stepId}"`));
        continue;
      }
      e.problems.push(...schemaProblems(m.source, stepChecks[step.check.type].paramsSchema, params, ['stepOptions', stepId]));
    }
  }
  if (playbookProblems.length > 0) {
    throw new ConfigError([...playbookProblems, ...entries.flatMap((e) => e.problems)]);
  }

  // The same squad name in two files (valid or not): every file claiming it is invalid, each naming the others.
  const claims = new Map<string, ReadManifestFile[]>();
  for (const e of entries) if (e.squad !== null) claims.set(e.squad, [...(claims.get(e.squad) ?? []), e]);
  for (const [squad, claimants] of claims) {
    if (claimants.length < 2) continue;
    claimants.forEach((e, i) => {
      const others = claimants.filter((o) => o !== e).map((o) => `${o.file}:${squadPosition(o).line}`);
      const where = squadPosition(e);
      const expected = i === 0 ? `expected a unique squad name, "${squad}" is also defined in ${others.join(', ')}` : `expected a unique squad name, "${squad}" is already defined in ${others.join(', ')}`;
      e.problems.push({ file: e.file, ...where, field: 'squad', expected });
    });
  }

  const squads: SquadMigration[] = [];
  const invalid: InvalidManifest[] = [];
  for (const e of entries) {
    const playbook = e.manifest ? playbooks.get(e.manifest.playbook) : undefined;
    if (e.manifest && playbook && e.problems.length === 0) squads.push({ manifest: e.manifest, playbook });
    else invalid.push({ file: e.file, squad: e.squad, couldBe: e.couldBe, problems: sortProblems(e.problems) });
  }
  return { squads, playbooks, invalid };
}

/** Where a file's `squad` key is (a file with a known squad always parsed). */
function squadPosition(e: ReadManifestFile): { line: number; column: number } {
  return e.source ? e.source.position(['squad']) : { line: 1, column: 1 };
}

/** Loads and validates the whole catalog strictly; throws one ConfigError with every problem found, in any file. */
export async function loadCatalog(opts: CatalogOptions): Promise<MigrationCatalog> {
  const catalog = await readCatalog(opts);
  if (catalog.invalid.length > 0) throw new ConfigError(catalog.invalid.flatMap((i) => i.problems));
  return catalog;
}

/** Every problem of some invalid manifests, one `file:line:col field: expected …` line each, indented. */
export function problemLines(invalid: readonly InvalidManifest[]): string {
  return invalid.flatMap((i) => i.problems.map((p) => `  ${formatProblem(p)}`)).join('\n');
}

function countProblems(invalid: readonly InvalidManifest[]): string {
  const n = invalid.reduce((sum, i) => sum + i.problems.length, 0);
  return n === 1 ? '1 problem' : `${n} problems`;
}

/**
 * The squad by name, for the commands about one squad. Works whenever that
 * squad's own manifest is valid, whatever is wrong in the others. Refused
 * (exit 2), with the problems:
 * - a manifest declaring this squad is invalid (including the same name in two files);
 * - a broken manifest whose squad cannot be read could be this squad's (its
 *   file name is `<squad>.yaml`, or its text has a `squad: <squad>` key): once
 *   fixed it might claim the name too, and which file is the squad's would be
 *   a guess. A broken file with neither cannot declare this squad (a manifest
 *   declares its squad in a `squad:` key), so it does not block it;
 * - an unknown name: the known squads are listed, and the broken manifests
 *   whose squad cannot be read, since the name may be in one of them.
 */
export function findSquad(catalog: MigrationCatalog, name: string): SquadMigration {
  const own = catalog.invalid.filter((i) => i.squad === name);
  if (own.length > 0) {
    throw new CliError(`squad "${name}" has an invalid manifest (${countProblems(own)}; other squads are not affected):\n${problemLines(own)}`, EXIT_USAGE);
  }
  const unreadable = catalog.invalid.filter((i) => i.squad === null);
  const s = catalog.squads.find((x) => x.manifest.squad === name);
  if (s) {
    const maybe = unreadable.filter((i) => i.couldBe.includes(name));
    if (maybe.length > 0) {
      throw new CliError(
        `squad "${name}": ${maybe.map((i) => i.file).join(', ')} may also be its manifest (its file name or a \`squad:\` key says "${name}") but is broken, so its squad cannot be read; fix it (${countProblems(maybe)}):\n${problemLines(maybe)}`,
        EXIT_USAGE,
      );
    }
    return s;
  }
  const invalidNames = catalog.invalid.filter((i) => i.squad !== null).map((i) => i.squad);
  const known = `expected one of ${catalog.squads.map((x) => x.manifest.squad).join(', ')}${invalidNames.length ? ` (invalid manifests: ${[...new Set(invalidNames)].join(', ')})` : ''}`;
  if (unreadable.length > 0) {
    throw new CliError(`unknown squad "${name}": ${known}; it may be in a broken manifest whose squad cannot be read (${countProblems(unreadable)}):\n${problemLines(unreadable)}`, EXIT_USAGE);
  }
  throw new CliError(`unknown squad "${name}": ${known}`, EXIT_USAGE);
}

/** The step by id, or a usage error naming the playbook's steps. */
export function findStep(sq: SquadMigration, id: string): PlaybookStep {
  const s = sq.playbook.steps.find((x) => x.id === id);
  if (!s) {
    throw new CliError(`unknown step "${id}": playbook "${sq.playbook.name}" has ${sq.playbook.steps.map((x) => x.id).join(', ')}`, EXIT_USAGE);
  }
  return s;
}

/** The check parameters for a squad's step: playbook values overridden by the manifest's stepOptions. */
export function stepParams(sq: SquadMigration, step: PlaybookStep): Record<string, unknown> {
  return { ...step.check.params, ...(sq.manifest.stepOptions[step.id] ?? {}) };
}
