/**
 * Playbooks: `playbooks/<name>.yaml`, the ordered steps a squad follows. Each
 * step says what to do (title, why, how), what must be done first
 * (dependsOn), and how it is verified (check type and parameters). Loading
 * refuses unknown check types, unknown or duplicate step ids and dependency
 * cycles, each with its file and line.
 */
import path from 'node:path';
import { schemaProblems, YamlSource } from './yaml-source.ts';
import { ConfigError, sortProblems, type ConfigProblem } from './config-error.ts';
import { CHECK_TYPES, type CheckType } from './step-check.ts';
import { stepChecks } from './checks/index.ts';

export interface PlaybookStep {
  id: string;
  title: string;
  why: string;
  /** Commands or instructions, one per line. */
  how: string[];
  dependsOn: string[];
  check: { type: CheckType; params: Record<string, unknown> };
  /** Whether `migrate complete` needs `--evidence` for this step. */
  evidence: 'required' | 'optional';
  /** True when the check type is manual (completed by a person). */
  manual: boolean;
}

export interface Playbook {
  name: string;
  title: string;
  description?: string;
  steps: PlaybookStep[];
  file: string;
}

const STEP_ID = '^[a-z][a-z0-9-]{0,62}$';

export const playbookSchema = {
  type: 'object',
  required: ['name', 'title', 'steps'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$', expected: 'the playbook name (same as its file name)' },
    title: { type: 'string', minLength: 1 },
    description: { type: 'string' },
    steps: {
      type: 'array',
      minItems: 1,
      expected: 'a list of at least one step',
      items: {
        type: 'object',
        required: ['id', 'title', 'why', 'how', 'check'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', pattern: STEP_ID, expected: 'a step id: lower-case letters, digits and dashes' },
          title: { type: 'string', minLength: 1 },
          why: { type: 'string', minLength: 1, expected: 'why this step matters, in a sentence or two' },
          how: { type: 'array', minItems: 1, items: { type: 'string' }, expected: 'a list of commands or instructions' },
          dependsOn: { type: 'array', items: { type: 'string', pattern: STEP_ID }, expected: 'a list of step ids' },
          evidence: { enum: ['required', 'optional'] },
          check: {
            type: 'object',
            required: ['type'],
            expected: `a check {type, ...parameters}`,
            properties: { type: { enum: [...CHECK_TYPES] } },
          },
        },
      },
    },
  },
} as const;

/** Finds a dependency cycle; returns the ids along it (first == last) or null. */
export function findCycle(steps: ReadonlyArray<{ id: string; dependsOn: string[] }>): string[] | null {
  const deps = new Map(steps.map((s) => [s.id, s.dependsOn]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | null => {
    const st = state.get(id);
    if (st === 'done') return null;
    if (st === 'visiting') return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 'visiting');
    stack.push(id);
    for (const d of deps.get(id) ?? []) {
      if (!deps.has(d)) continue;
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    state.set(id, 'done');
    return null;
  };
  for (const s of steps) {
    const c = visit(s.id);
    if (c) return c;
  }
  return null;
}

/** Steps in an order where every step comes after its dependencies (stable: file order otherwise). */
export function dependencyOrder<T extends { id: string; dependsOn: string[] }>(steps: readonly T[]): T[] {
  const out: T[] = [];
  const placed = new Set<string>();
  const byId = new Map(steps.map((s) => [s.id, s]));
  const place = (s: T) => {
    if (placed.has(s.id)) return;
    placed.add(s.id);
    for (const d of s.dependsOn) {
      const dep = byId.get(d);
      if (dep) place(dep);
    }
    out.push(s);
  };
  steps.forEach(place);
  return out;
}

/** Validates a parsed playbook; returns it and every problem found. */
export function readPlaybook(source: YamlSource): { playbook?: Playbook; problems: ConfigProblem[] } {
  const problems = schemaProblems(source, playbookSchema);
  if (problems.length > 0) return { problems: sortProblems(problems) };
  const raw = source.value as {
    name: string;
    title: string;
    description?: string;
    steps: Array<{ id: string; title: string; why: string; how: string[]; dependsOn?: string[]; evidence?: 'required' | 'optional'; check: { type: CheckType } & Record<string, unknown> }>;
  };
  const expectedName = path.basename(source.file).replace(/\.ya?ml$/, '');
  if (raw.name !== expectedName) problems.push(source.problem(['name'], `expected "${expectedName}" (the file name), got "${raw.name}"`));
  const ids = new Map<string, number>();
  raw.steps.forEach((s, i) => {
    const first = ids.get(s.id);
    if (first !== undefined) problems.push(source.problem(['steps', i, 'id'], `expected a unique step id, "${s.id}" is already step ${first + 1} (line ${source.position(['steps', first, 'id']).line})`));
    else ids.set(s.id, i);
  });
  raw.steps.forEach((s, i) => {
    (s.dependsOn ?? []).forEach((d, j) => {
      if (!ids.has(d)) problems.push(source.problem(['steps', i, 'dependsOn', j], `expected the id of a step of this playbook (${[...ids.keys()].join(', ')}), got unknown step "${d}"`));
      else if (d === s.id) problems.push(source.problem(['steps', i, 'dependsOn', j], `expected another step: "${d}" cannot depend on itself`));
    });
    const { type, ...params } = s.check;
    const check = stepChecks[type];
    problems.push(...schemaProblems(source, check.paramsSchema, params, ['steps', i, 'check']));
  });
  if (problems.length === 0) {
    const steps = raw.steps.map((s) => ({ id: s.id, dependsOn: s.dependsOn ?? [] }));
    const cycle = findCycle(steps);
    if (cycle) {
      const closing = raw.steps.findIndex((s) => s.id === cycle[cycle.length - 2]);
      const depIndex = (raw.steps[closing]?.dependsOn ?? []).indexOf(cycle[cycle.length - 1]!);
      problems.push(source.problem(['steps', closing, 'dependsOn', depIndex], `expected dependencies without a cycle, found ${cycle.join(' → ')}`));
    }
  }
  if (problems.length > 0) return { problems: sortProblems(problems) };
  const playbook: Playbook = {
    name: raw.name,
    title: raw.title,
    ...(raw.description !== undefined ? { description: raw.description } : {}),
    file: source.file,
    steps: raw.steps.map((s) => {
      const { type, ...params } = s.check;
      const manual = stepChecks[type].manual;
      return {
        id: s.id,
        title: s.title,
        why: s.why.trim(),
        how: s.how,
        dependsOn: s.dependsOn ?? [],
        check: { type, params: { ...stepChecks[type].defaults, ...params } },
        evidence: s.evidence ?? (manual ? 'required' : 'optional'),
        manual,
      };
    }),
  };
  return { playbook, problems: [] };
}

/** Loads and validates one playbook file; throws ConfigError listing every problem. */
export async function loadPlaybook(file: string): Promise<Playbook> {
  const { playbook, problems } = readPlaybook(await YamlSource.load(file));
  if (!playbook) throw new ConfigError(problems);
  return playbook;
}
