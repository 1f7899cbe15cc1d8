/**
 * Manifest and playbook validation: every problem names the file, the line,
 * the field and what was expected; cycles, unknown steps and duplicate squad
 * names are refused.
 */
import { mkdtemp, mkdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findSquad, loadCatalog, readCatalog } from '../../cli/migration/catalog.ts';
import { ConfigError, formatProblem } from '../../cli/migration/config-error.ts';
import { CliError } from '../../cli/output.ts';
import { readManifest } from '../../cli/migration/manifest.ts';
import { dependencyOrder, findCycle, readPlaybook } from '../../cli/migration/playbook.ts';
import { YamlSource } from '../../cli/migration/yaml-source.ts';

const repo = path.resolve(import.meta.dirname, '../..');

const GOOD_MANIFEST = `squad: gadgets
owners:
  - Ada <ada@example.com>
playbook: sync-to-bifrost
targetDate: 2027-01-31
services:
  - name: gadgets
    upstream: http://127.0.0.1:7000
    prefixes: [/gadget]
topics: ["gadget:{id}"]
events: [gadget]
routes:
  - name: list
    method: GET
    path: /gadget
probe:
  create: { method: POST, path: /gadget, body: { name: probe } }
  read: { method: GET, path: "/gadget/{id}" }
  update: { method: PATCH, path: "/gadget/{id}", body: { name: x } }
  topic: "gadget:{id}"
  event: gadget
`;

function manifestProblems(text: string, file = 'migrations/gadgets.yaml') {
  return readManifest(YamlSource.parse(file, text)).problems;
}

function playbookProblems(text: string, file = 'playbooks/mini.yaml') {
  return readPlaybook(YamlSource.parse(file, text)).problems;
}

describe('squad manifest validation', () => {
  it('accepts a complete manifest and parses "Name <email>" owners', () => {
    const r = readManifest(YamlSource.parse('m.yaml', GOOD_MANIFEST));
    expect(r.problems).toEqual([]);
    expect(r.manifest?.owners).toEqual([{ name: 'Ada', email: 'ada@example.com' }]);
    expect(r.manifest?.probeUser).toEqual({ id: 'bifrost-probe-gadgets', team: 'bifrost-probe' });
  });

  it('points at the line and field of a wrongly typed value and says what was expected', () => {
    const text = GOOD_MANIFEST.replace('upstream: http://127.0.0.1:7000', 'upstream: 7000');
    const problems = manifestProblems(text);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'migrations/gadgets.yaml', line: 8, field: 'services[0].upstream' });
    expect(problems[0]!.expected).toMatch(/http\(s\) URL/);
    expect(formatProblem(problems[0]!)).toMatch(/^migrations\/gadgets\.yaml:8:\d+ services\[0\]\.upstream: expected an http\(s\) URL/);
  });

  it('names a missing required field at the line of its parent', () => {
    const text = GOOD_MANIFEST.replace('    prefixes: [/gadget]\n', '');
    const problems = manifestProblems(text);
    expect(problems).toEqual([expect.objectContaining({ line: 7, field: 'services[0].prefixes', expected: expect.stringMatching(/required but missing/) })]);
  });

  it('refuses an unknown field, listing the allowed ones', () => {
    const problems = manifestProblems(GOOD_MANIFEST + 'ownr: bob\n');
    expect(problems).toEqual([expect.objectContaining({ line: 22, field: 'ownr', expected: expect.stringContaining('owners') })]);
  });

  it('refuses an impossible target date and a route outside the prefixes', () => {
    const text = GOOD_MANIFEST.replace('2027-01-31', '2027-02-30').replace('    path: /gadget\n', '    path: /widget\n');
    const problems = manifestProblems(text);
    expect(problems.map((p) => [p.line, p.field])).toEqual([
      [5, 'targetDate'],
      [15, 'routes[0].path'],
    ]);
  });

  it('refuses a mutating route that is not marked safe to repeat or on its own probe record (route-parity sends it twice)', () => {
    const route = (extra: string, method = 'PATCH') => GOOD_MANIFEST.replace('    method: GET\n    path: /gadget\n', `    method: ${method}\n    path: /gadget/{id}\n${extra}`);
    const plain = manifestProblems(route(''));
    expect(plain).toEqual([expect.objectContaining({ line: 14, field: 'routes[0].method', expected: expect.stringMatching(/^expected GET, or a PATCH route marked `safeToRepeat: true` .* or `ownProbeRecord: true` .*: route-parity sends every route twice$/) })]);
    expect(manifestProblems(route('    safeToRepeat: true\n'))).toEqual([]);
    expect(manifestProblems(route('    ownProbeRecord: true\n'))).toEqual([]);
    expect(manifestProblems(route('', 'POST')).map((p) => p.field)).toEqual(['routes[0].method']);
    // A second DELETE never answers like the first.
    expect(manifestProblems(route('    safeToRepeat: true\n', 'DELETE'))).toEqual([expect.objectContaining({ field: 'routes[0].safeToRepeat', expected: expect.stringMatching(/ownProbeRecord: true` for a DELETE route/) })]);
    expect(manifestProblems(route('    ownProbeRecord: true\n', 'DELETE'))).toEqual([]);
    // ownProbeRecord needs probe.create and {id}.
    const noCreate = route('    ownProbeRecord: true\n').replace('  create: { method: POST, path: /gadget, body: { name: probe } }\n', '  id: g1\n');
    expect(manifestProblems(noCreate).map((p) => p.field)).toEqual(['routes[0].ownProbeRecord']);
  });

  it('refuses a probe cleanup without create: the checks never delete a record they did not create', () => {
    const fixed = GOOD_MANIFEST.replace('  create: { method: POST, path: /gadget, body: { name: probe } }\n', '  id: g1\n  cleanup: { method: DELETE, path: "/gadget/{id}" }\n');
    expect(manifestProblems(fixed)).toEqual([expect.objectContaining({ field: 'probe.cleanup', expected: expect.stringMatching(/only with `create`: the checks delete only the probe records they create, never a fixed `id`/) })]);
    expect(manifestProblems(fixed.replace('  cleanup: { method: DELETE, path: "/gadget/{id}" }\n', ''))).toEqual([]);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(() => YamlSource.parse('bad.yaml', 'squad: x\nowners: [a, b\nplaybook: y\n')).toThrow(ConfigError);
    try {
      YamlSource.parse('bad.yaml', 'squad: x\nsquad: y\n');
    } catch (err) {
      expect((err as ConfigError).problems[0]).toMatchObject({ file: 'bad.yaml', line: 2 });
      expect((err as ConfigError).message).toMatch(/bad\.yaml:2:\d+/);
    }
    expect.assertions(3);
  });
});

const MINI_PLAYBOOK = (steps: string) => `name: mini
title: Mini
steps:
${steps}`;

describe('playbook validation', () => {
  it('accepts the shipped playbook and orders steps after their dependencies', async () => {
    const source = await YamlSource.load(path.join(repo, 'playbooks/sync-to-bifrost.yaml'));
    const { playbook, problems } = readPlaybook(source);
    expect(problems).toEqual([]);
    expect(playbook!.steps.map((s) => s.check.type)).toEqual(['inventory', 'register-service', 'dual-publish', 'subscribe-headers', 'route-parity', 'canary', 'cutover', 'decommission']);
    const order = dependencyOrder(playbook!.steps).map((s) => s.id);
    for (const s of playbook!.steps) for (const d of s.dependsOn) expect(order.indexOf(d)).toBeLessThan(order.indexOf(s.id));
    expect(playbook!.steps.find((s) => s.id === 'decommission')).toMatchObject({ manual: true, evidence: 'required' });
    expect(playbook!.steps.find((s) => s.id === 'canary')!.check.params).toMatchObject({ minPercent: 5, forSeconds: 600, metric: 'bifrost_shim_upgrades_total' });
  });

  it('refuses a dependency cycle, naming it and the line that closes it', () => {
    const problems = playbookProblems(
      MINI_PLAYBOOK(`  - id: a
    title: A
    why: because
    how: [do a]
    dependsOn: [c]
    check: { type: inventory }
  - id: b
    title: B
    why: because
    how: [do b]
    dependsOn: [a]
    check: { type: inventory }
  - id: c
    title: C
    why: because
    how: [do c]
    dependsOn: [b]
    check: { type: inventory }
`),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]!.expected).toMatch(/cycle, found a → c → b → a/);
    expect(problems[0]).toMatchObject({ line: 14, field: 'steps[1].dependsOn[0]' });
  });

  it('refuses a dependency on an unknown step and an unknown check type, with lines', () => {
    const problems = playbookProblems(
      MINI_PLAYBOOK(`  - id: a
    title: A
    why: because
    how: [do a]
    dependsOn: [nope]
    check: { type: inventory }
  - id: b
    title: B
    why: because
    how: [do b]
    check: { type: telepathy }
`),
    );
    expect(problems.map((p) => [p.line, p.field])).toEqual([
      [14, 'steps[1].check.type'],
    ]);
    expect(problems[0]!.expected).toMatch(/one of "inventory", "register-service"/);
    const unknownDep = playbookProblems(
      MINI_PLAYBOOK(`  - id: a
    title: A
    why: because
    how: [do a]
    dependsOn: [nope]
    check: { type: inventory }
`),
    );
    expect(unknownDep).toEqual([expect.objectContaining({ line: 8, field: 'steps[0].dependsOn[0]', expected: expect.stringContaining('unknown step "nope"') })]);
  });

  it('refuses duplicate step ids and check parameters the check does not know', () => {
    const problems = playbookProblems(
      MINI_PLAYBOOK(`  - id: a
    title: A
    why: because
    how: [do a]
    check: { type: canary, minPercent: 500, colour: red }
  - id: a
    title: A again
    why: because
    how: [do a]
    check: { type: inventory }
`),
    );
    expect(problems.map((p) => [p.line, p.field])).toEqual([
      [8, 'steps[0].check.minPercent'],
      [8, 'steps[0].check.colour'],
      [9, 'steps[1].id'],
    ]);
  });

  it('findCycle returns null for a DAG', () => {
    expect(findCycle([{ id: 'a', dependsOn: [] }, { id: 'b', dependsOn: ['a'] }])).toBeNull();
    expect(findCycle([{ id: 'a', dependsOn: ['a2'] }, { id: 'a2', dependsOn: ['a'] }])).toEqual(['a', 'a2', 'a']);
  });
});

describe('the catalog (every manifest with its playbook)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bifrost-migration-validation-'));
    await mkdir(path.join(dir, 'migrations'));
    await mkdir(path.join(dir, 'playbooks'));
    await copyFile(path.join(repo, 'playbooks/sync-to-bifrost.yaml'), path.join(dir, 'playbooks/sync-to-bifrost.yaml'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const load = () => loadCatalog({ migrationsDir: path.join(dir, 'migrations'), playbooksDir: path.join(dir, 'playbooks') });

  it('loads the three shipped squads', async () => {
    const catalog = await loadCatalog({ migrationsDir: path.join(repo, 'migrations'), playbooksDir: path.join(repo, 'playbooks') });
    expect(catalog.squads.map((s) => s.manifest.squad)).toEqual(['collections', 'notifications', 'workspaces']);
    expect(catalog.squads.find((s) => s.manifest.squad === 'workspaces')!.manifest.stepOptions.canary).toEqual({ minPercent: 10, forSeconds: 1800 });
  });

  it('refuses the same squad name in two files, pointing at both', async () => {
    await writeFile(path.join(dir, 'migrations/a.yaml'), GOOD_MANIFEST);
    await writeFile(path.join(dir, 'migrations/b.yaml'), `# copy\n${GOOD_MANIFEST}`);
    const err = await load().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const p = (err as ConfigError).problems;
    expect(p.map(formatProblem)).toEqual([
      expect.stringMatching(/a\.yaml:1:1 squad: expected a unique squad name, "gadgets" is also defined in .*b\.yaml:2$/),
      expect.stringMatching(/b\.yaml:2:1 squad: expected a unique squad name, "gadgets" is already defined in .*a\.yaml:1$/),
    ]);
  });

  it('refuses stepOptions for a step the playbook does not have, and bad parameters for a known one', async () => {
    await writeFile(path.join(dir, 'migrations/a.yaml'), GOOD_MANIFEST + 'stepOptions:\n  canary: { minPercent: -3 }\n  canery: { minPercent: 3 }\n');
    const err = (await load().catch((e: unknown) => e)) as ConfigError;
    expect(err.problems.map((p) => [p.line, p.field])).toEqual([
      [23, 'stepOptions.canary.minPercent'],
      [24, 'stepOptions.canery'],
    ]);
    expect(err.problems[1]!.expected).toMatch(/unknown step "canery"/);
  });

  it('refuses a manifest naming a playbook that does not exist', async () => {
    await writeFile(path.join(dir, 'migrations/a.yaml'), GOOD_MANIFEST.replace('playbook: sync-to-bifrost', 'playbook: sync-to-nowhere'));
    const err = (await load().catch((e: unknown) => e)) as ConfigError;
    expect(err.problems).toEqual([expect.objectContaining({ line: 4, field: 'playbook', expected: expect.stringContaining('sync-to-nowhere.yaml cannot be read') })]);
  });

  it('collects problems from every file at once', async () => {
    await writeFile(path.join(dir, 'migrations/a.yaml'), GOOD_MANIFEST.replace('events: [gadget]', 'events: []'));
    await writeFile(path.join(dir, 'migrations/b.yaml'), GOOD_MANIFEST.replace('squad: gadgets', 'squad: Gadgets2'));
    const err = (await load().catch((e: unknown) => e)) as ConfigError;
    expect(err.problems.map((p) => `${path.basename(p.file)}:${p.line} ${p.field}`)).toEqual(['a.yaml:11 events', 'b.yaml:1 squad']);
  });
});

describe('one invalid manifest does not block the other squads (readCatalog, findSquad)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bifrost-migration-invalid-'));
    await mkdir(path.join(dir, 'migrations'));
    await mkdir(path.join(dir, 'playbooks'));
    await copyFile(path.join(repo, 'playbooks/sync-to-bifrost.yaml'), path.join(dir, 'playbooks/sync-to-bifrost.yaml'));
    await writeFile(path.join(dir, 'migrations/gadgets.yaml'), GOOD_MANIFEST);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const read = () => readCatalog({ migrationsDir: path.join(dir, 'migrations'), playbooksDir: path.join(dir, 'playbooks') });
  const gizmos = GOOD_MANIFEST.replaceAll('gadget', 'gizmo');
  const refusal = (fn: () => unknown): CliError => {
    try {
      fn();
    } catch (err) {
      return err as CliError;
    }
    throw new Error('expected a refusal');
  };

  it('keeps a broken manifest aside with its squad and problems; the valid squads load', async () => {
    await writeFile(path.join(dir, 'migrations/gizmos.yaml'), gizmos.replace('targetDate: 2027-01-31', 'targetDate: soon'));
    const catalog = await read();
    expect(catalog.squads.map((s) => s.manifest.squad)).toEqual(['gadgets']);
    expect(catalog.invalid).toEqual([{ file: path.join(dir, 'migrations/gizmos.yaml'), squad: 'gizmos', couldBe: [], problems: [expect.objectContaining({ line: 5, field: 'targetDate' })] }]);
    expect(findSquad(catalog, 'gadgets').manifest.squad).toBe('gadgets');
    const err = refusal(() => findSquad(catalog, 'gizmos'));
    expect(err).toBeInstanceOf(CliError);
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/^squad "gizmos" has an invalid manifest \(1 problem; other squads are not affected\):\n {2}\S+gizmos\.yaml:5:1 targetDate: expected a date YYYY-MM-DD, got "soon"$/);
    await expect(loadCatalog({ migrationsDir: path.join(dir, 'migrations'), playbooksDir: path.join(dir, 'playbooks') })).rejects.toBeInstanceOf(ConfigError);
  });

  it('a manifest whose squad cannot be read blocks only the squad its file name or squad: key names', async () => {
    // YAML that does not parse: the squad comes from the text, the file name from the convention.
    await writeFile(path.join(dir, 'migrations/broken.yaml'), 'squad: "gizmos"\nowners: [\n');
    await writeFile(path.join(dir, 'migrations/gizmos.yaml'), gizmos);
    await writeFile(path.join(dir, 'migrations/widgets.yaml'), GOOD_MANIFEST.replaceAll('gadget', 'widget'));
    const catalog = await read();
    expect(catalog.squads.map((s) => s.manifest.squad)).toEqual(['gadgets', 'gizmos', 'widgets']);
    expect(catalog.invalid).toEqual([expect.objectContaining({ squad: null, couldBe: ['broken', 'gizmos'] })]);
    expect(findSquad(catalog, 'gadgets').manifest.squad).toBe('gadgets');
    expect(findSquad(catalog, 'widgets').manifest.squad).toBe('widgets');
    const err = refusal(() => findSquad(catalog, 'gizmos'));
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/^squad "gizmos": \S+broken\.yaml may also be its manifest .*\n {2}\S+broken\.yaml:3:1: valid YAML/);
    // An unknown name may be the broken file's: the message shows its problems.
    expect(refusal(() => findSquad(catalog, 'sprockets')).message).toMatch(/^unknown squad "sprockets": expected one of gadgets, gizmos, widgets; it may be in a broken manifest whose squad cannot be read \(1 problem\):\n {2}\S+broken\.yaml:3:1/);
  });

  it('the same squad name in two files makes both invalid; the other squads still load', async () => {
    await writeFile(path.join(dir, 'migrations/gizmos.yaml'), gizmos);
    await writeFile(path.join(dir, 'migrations/gizmos-copy.yaml'), gizmos);
    const catalog = await read();
    expect(catalog.squads.map((s) => s.manifest.squad)).toEqual(['gadgets']);
    expect(catalog.invalid.map((i) => [path.basename(i.file), i.squad])).toEqual([
      ['gizmos-copy.yaml', 'gizmos'],
      ['gizmos.yaml', 'gizmos'],
    ]);
    const err = refusal(() => findSquad(catalog, 'gizmos'));
    expect(err.message).toMatch(/gizmos-copy\.yaml:1:1 squad: expected a unique squad name, "gizmos" is also defined in \S+gizmos\.yaml:1/);
    expect(err.message).toMatch(/gizmos\.yaml:1:1 squad: expected a unique squad name, "gizmos" is already defined in \S+gizmos-copy\.yaml:1/);
    expect(refusal(() => findSquad(catalog, 'nope')).message).toBe('unknown squad "nope": expected one of gadgets (invalid manifests: gizmos)');
  });

  it('a manifest naming a playbook that does not exist is that squad\'s problem; a broken playbook stops everyone', async () => {
    await writeFile(path.join(dir, 'migrations/gizmos.yaml'), gizmos.replace('playbook: sync-to-bifrost', 'playbook: sync-to-nowhere'));
    const catalog = await read();
    expect(catalog.squads.map((s) => s.manifest.squad)).toEqual(['gadgets']);
    expect(catalog.invalid[0]!.problems).toEqual([expect.objectContaining({ line: 4, field: 'playbook', expected: expect.stringContaining('sync-to-nowhere.yaml cannot be read') })]);
    await writeFile(path.join(dir, 'playbooks/sync-to-bifrost.yaml'), 'name: sync-to-bifrost\ntitle: 3\nsteps: []\n');
    const err = (await read().catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.exitCode).toBe(2);
    expect(err.problems.map((p) => `${path.basename(p.file)}:${p.line} ${p.field}`)).toEqual(['gizmos.yaml:4 playbook', 'sync-to-bifrost.yaml:2 title', 'sync-to-bifrost.yaml:3 steps']);
  });
});
