/**
 * Individual targets and rules, which come before the percentage: reading them
 * from flag JSON and LaunchDarkly, telling when they contradict a percentage,
 * and what the flags-file target does with them on a write.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FLAG_KEY, buildFlag } from '../../proxy/flags-file.ts';
import { FileFlagTarget } from '../../cli/rollout/flag-target-file.ts';
import { conflictingOverrides, describeOverrides, overridesOf, overridesWarning } from '../../cli/rollout/flag-overrides.ts';
import { overridesOfLdFlag } from '../../cli/rollout/flag-target-launchdarkly.ts';

const lists = {
  targets: [{ values: ['u-1', 'u-2'], variation: 1 }],
  contextTargets: [
    { contextKind: 'user', values: [], variation: 1 }, // LaunchDarkly's placeholder for the keys in `targets`
    { contextKind: 'team', values: ['t-core'], variation: 0 },
  ],
  rules: [
    { id: 'r-beta', variation: 1, clauses: [] },
    { _id: 'r-half', description: 'half the staff', rollout: { variations: [{ variation: 1, weight: 50_000 }, { variation: 0, weight: 50_000 }] }, clauses: [] },
  ],
};

describe('targets and rules of the migration flag', () => {
  it('lists targets with their context kind and key count, and rules with what they serve', () => {
    expect(overridesOf(['sync', 'bifrost'], lists)).toEqual([
      { kind: 'target', contextKind: 'user', contexts: 2, serves: 'bifrost', bifrostPercent: 100 },
      { kind: 'target', contextKind: 'team', contexts: 1, serves: 'sync', bifrostPercent: 0 },
      { kind: 'rule', rule: 'r-beta', serves: 'bifrost', bifrostPercent: 100 },
      { kind: 'rule', rule: 'half the staff', serves: 'rollout', bifrostPercent: 50 },
    ]);
    expect(overridesOf(['sync', 'bifrost'], {})).toEqual([]);
    expect(overridesOf(['sync', 'bifrost'], { targets: [{ values: ['x'], variation: 7 }], rules: [{ clauses: [] }] })).toEqual([]); // serves nothing readable
  });

  it('reads them from a LaunchDarkly environment by variation value, not index', () => {
    const flag = {
      key: FLAG_KEY,
      variations: [
        { _id: 'b', value: 'bifrost' },
        { _id: 's', value: 'sync' },
      ],
      environments: { production: { on: true, rules: [{ _id: 'r', variation: 0 }], targets: [{ values: ['u'], variation: 1 }] } },
    };
    expect(overridesOfLdFlag(flag, 'production')).toEqual([
      { kind: 'target', contextKind: 'user', contexts: 1, serves: 'sync', bifrostPercent: 0 },
      { kind: 'rule', rule: 'r', serves: 'bifrost', bifrostPercent: 100 },
    ]);
    expect(overridesOfLdFlag(flag, 'staging')).toEqual([]);
  });

  it('contradicts 0% with anything serving Bifrost, 100% with anything serving Sync, a share with anything else', () => {
    const all = overridesOf(['sync', 'bifrost'], lists);
    expect(conflictingOverrides(all, 0).map((o) => o.rule ?? o.contextKind)).toEqual(['user', 'r-beta', 'half the staff']);
    expect(conflictingOverrides(all, 100).map((o) => o.rule ?? o.contextKind)).toEqual(['team', 'half the staff']);
    expect(conflictingOverrides(all, 50).map((o) => o.rule ?? o.contextKind)).toEqual(['user', 'team', 'r-beta']);
    expect(describeOverrides(all)).toBe('1 individual target (2 contexts) and 1 rule serving "bifrost"; 1 individual target (1 context) serving "sync"; 1 rule serving a separate rollout (50% on Bifrost)');
    expect(overridesWarning(all, 0)).toBe(
      'the flag also has 1 individual target (2 contexts) and 1 rule serving "bifrost"; 1 rule serving a separate rollout (50% on Bifrost): targets and rules come before the percentage, so the contexts they match get what they serve and 0% is not everyone on Sync',
    );
    expect(overridesWarning(overridesOf(['sync', 'bifrost'], { rules: [{ variation: 0 }] }), 0)).toBeNull();
  });
});

describe('the flags-file target and hand-added targets and rules', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bifrost-overrides-'));
    file = join(dir, 'flags.json');
    const flag = { ...buildFlag({ percent: 20, bucketBy: 'user' }, 'salt-1', 3), ...lists };
    await writeFile(file, JSON.stringify({ flags: { [FLAG_KEY]: flag } }));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the targets and rules in force (none while the flag is off)', async () => {
    const target = new FileFlagTarget(file);
    expect((await target.read()).overrides).toHaveLength(4);
    const text = JSON.parse(await readFile(file, 'utf8')) as { flags: Record<string, { on: boolean }> };
    text.flags[FLAG_KEY]!.on = false;
    await writeFile(file, JSON.stringify(text));
    expect(await target.read()).toMatchObject({ on: false, overrides: [] });
  });

  it('a write removes them (the flag is written whole) and says what it removed', async () => {
    const r = await new FileFlagTarget(file).write({ percent: 0, comment: 'rollback', rollback: true });
    expect(r).toMatchObject({ percent: 0, on: true, overrides: [] });
    expect(r.warnings).toEqual([
      `this write removed the flag's 1 individual target (2 contexts) and 1 rule serving "bifrost"; 1 individual target (1 context) serving "sync"; 1 rule serving a separate rollout (50% on Bifrost) from ${file} (the CLI writes the migration flag whole, keeping only its salt): 0% now applies to every context, so everyone is on Sync; to pin contexts, use live LaunchDarkly`,
    ]);
    const flag = (JSON.parse(await readFile(file, 'utf8')) as { flags: Record<string, Record<string, unknown>> }).flags[FLAG_KEY]!;
    expect(flag).toMatchObject({ targets: [], contextTargets: [], rules: [], salt: 'salt-1', version: 4 });
    // Nothing left to remove: no warning the next time.
    expect((await new FileFlagTarget(file).write({ percent: 5, comment: 'set' })).warnings).toEqual([]);
  });
});
