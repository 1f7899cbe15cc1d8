/**
 * The migration catalog: every squad manifest in the migrations directory
 * with the playbook it follows, validated together. Problems across files
 * (a missing playbook, stepOptions for an unknown step, the same squad name
 * in two files) are reported with the rest, all at once.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type ConfigProblem } from './config-error.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import { readManifest, type SquadManifest } from './manifest.ts';
import { readPlaybook, type Playbook, type PlaybookStep } from './playbook.ts';
import { schemaProblems, YamlSource } from './yaml-source.ts';
import { stepChecks } from './checks/index.ts';

/** A squad with its playbook resolved: what every command works on. */
export interface SquadMigration {
  manifest: SquadManifest;
  playbook: Playbook;
}

export interface MigrationCatalog {
  squads: SquadMigration[];
  playbooks: Map<string, Playbook>;
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

/** Loads and validates the whole catalog; throws one ConfigError with every problem found. */
export async function loadCatalog(opts: CatalogOptions): Promise<MigrationCatalog> {
  const problems: ConfigProblem[] = [];
  const files = await yamlFiles(opts.migrationsDir, 'migrations');
  if (files.length === 0) {
    throw new ConfigError([{ file: opts.migrationsDir, line: 0, column: 0, field: '', expected: 'at least one squad manifest <squad>.yaml' }]);
  }
  const manifests: SquadManifest[] = [];
  for (const file of files) {
    try {
      const { manifest, problems: p } = readManifest(await YamlSource.load(file));
      problems.push(...p);
      if (manifest) manifests.push(manifest);
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
    }
  }

  const bySquad = new Map<string, SquadManifest>();
  for (const m of manifests) {
    const first = bySquad.get(m.squad);
    if (first) {
      problems.push(m.source.problem(['squad'], `expected a unique squad name, "${m.squad}" is already defined in ${first.file}:${first.source.position(['squad']).line}`));
    } else bySquad.set(m.squad, m);
  }

  const playbooks = new Map<string, Playbook>();
  const failedPlaybooks = new Set<string>();
  const squads: SquadMigration[] = [];
  for (const m of bySquad.values()) {
    let playbook = playbooks.get(m.playbook);
    if (!playbook && !failedPlaybooks.has(m.playbook)) {
      const file = path.join(opts.playbooksDir, `${m.playbook}.yaml`);
      try {
        const source = await YamlSource.load(file);
        const r = readPlaybook(source);
        problems.push(...r.problems);
        if (r.playbook) {
          playbook = r.playbook;
          playbooks.set(m.playbook, playbook);
        } else failedPlaybooks.add(m.playbook);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        failedPlaybooks.add(m.playbook);
        const notFound = err.problems.length === 1 && err.problems[0]!.line === 0;
        if (notFound) problems.push(m.source.problem(['playbook'], `expected a playbook that exists, but ${file} cannot be read`));
        else problems.push(...err.problems);
      }
    }
    if (!playbook) continue;
    const stepIds = playbook.steps.map((s) => s.id);
    for (const [stepId, params] of Object.entries(m.stepOptions)) {
      const step = playbook.steps.find((s) => s.id === stepId);
      if (!step) {
        problems.push(m.source.problem(['stepOptions', stepId], `expected a step of playbook "${playbook.name}" (${stepIds.join(', ')}), got unknown step "${stepId}"`));
        continue;
      }
      problems.push(...schemaProblems(m.source, stepChecks[step.check.type].paramsSchema, params, ['stepOptions', stepId]));
    }
    squads.push({ manifest: m, playbook });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { squads, playbooks };
}

/** The squad by name, or a usage error naming the known squads. */
export function findSquad(catalog: MigrationCatalog, name: string): SquadMigration {
  const s = catalog.squads.find((x) => x.manifest.squad === name);
  if (!s) {
    throw new CliError(`unknown squad "${name}": expected one of ${catalog.squads.map((x) => x.manifest.squad).join(', ')}`, EXIT_USAGE);
  }
  return s;
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
