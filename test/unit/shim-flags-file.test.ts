import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FLAG_KEY,
  FlagsFileError,
  WEIGHT_TOTAL,
  buildFlag,
  ensureFlagsFile,
  parseFlagsFile,
  readRollout,
  validatePercent,
  writeRollout,
} from '../../proxy/flags-file.ts';

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-flags-'));
  file = join(dir, 'sub', 'flags.json');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('flags file', () => {
  it('is created on first run with the migration flag at 0% by user, in FileDataSource format', async () => {
    expect(await ensureFlagsFile(file)).toBe(true);
    const json = JSON.parse(await readFile(file, 'utf8'));
    const flag = json.flags[FLAG_KEY];
    expect(flag.key).toBe(FLAG_KEY);
    expect(flag.on).toBe(true);
    expect(flag.variations).toEqual(['sync', 'bifrost']);
    expect(flag.fallthrough.rollout.contextKind).toBe('user');
    expect(flag.fallthrough.rollout.bucketBy).toBe('key');
    expect(flag.fallthrough.rollout.variations).toEqual([
      { variation: 1, weight: 0 },
      { variation: 0, weight: WEIGHT_TOTAL },
    ]);
    expect(flag.salt).toMatch(/^[0-9a-f]{32}$/);
    expect(await readRollout(file)).toMatchObject({ percent: 0, bucketBy: 'user', version: 1 });
  });

  it('is left alone when it already exists', async () => {
    await writeRollout(file, { percent: 40, bucketBy: 'team' });
    const before = await readFile(file, 'utf8');
    expect(await ensureFlagsFile(file)).toBe(false);
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('keeps the salt across writes and bumps the version, so raising the percentage only adds users', async () => {
    await ensureFlagsFile(file);
    const first = await readRollout(file);
    const a = await writeRollout(file, { percent: 10, bucketBy: 'user' });
    const b = await writeRollout(file, { percent: 55.5, bucketBy: 'team' });
    expect(a.salt).toBe(first.salt);
    expect(b.salt).toBe(first.salt);
    expect(b.version).toBe(first.version + 2);
    const r = await readRollout(file);
    expect(r).toMatchObject({ percent: 55.5, bucketBy: 'team', salt: first.salt, version: first.version + 2 });
    const flag = JSON.parse(await readFile(file, 'utf8')).flags[FLAG_KEY];
    expect(flag.fallthrough.rollout).toMatchObject({ contextKind: 'team', bucketBy: 'key' });
    expect(flag.fallthrough.rollout.variations).toEqual([
      { variation: 1, weight: 55_500 },
      { variation: 0, weight: 44_500 },
    ]);
  });

  it('writes atomically: no temp file is left behind and other flags are kept', async () => {
    await writeFile(file.replace('sub/flags.json', 'flags.json'), '');
    await writeRollout(file, { percent: 5, bucketBy: 'user' });
    const json = JSON.parse(await readFile(file, 'utf8'));
    json.flags['other-flag'] = buildFlag({ percent: 0, bucketBy: 'user' }, 'x', 1);
    json.flags['other-flag'].key = 'other-flag';
    await writeFile(file, JSON.stringify(json));
    await writeRollout(file, { percent: 6, bucketBy: 'user' });
    const after = JSON.parse(await readFile(file, 'utf8'));
    expect(Object.keys(after.flags).sort()).toEqual([FLAG_KEY, 'other-flag'].sort());
    expect((await readdir(join(dir, 'sub'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to overwrite a file it cannot parse', async () => {
    await writeRollout(file, { percent: 5, bucketBy: 'user' });
    await writeFile(file, '{"flags": {');
    await expect(writeRollout(file, { percent: 7, bucketBy: 'user' })).rejects.toThrow(/refusing to overwrite .*not valid JSON/);
    expect(await readFile(file, 'utf8')).toBe('{"flags": {');
  });

  it('rejects bad percentages and bucket-by values with precise messages', () => {
    expect(() => validatePercent(-1)).toThrow('percent must be from 0 to 100, got -1');
    expect(() => validatePercent(100.5)).toThrow('percent must be from 0 to 100, got 100.5');
    expect(() => validatePercent(Number.NaN)).toThrow(/must be a number/);
    expect(() => validatePercent('50')).toThrow('percent must be a number from 0 to 100, got "50"');
    expect(() => validatePercent(12.3456)).toThrow(/at most 3 decimals/);
    expect(validatePercent(12.345)).toBe(12.345);
    return expect(writeRollout(file, { percent: 10, bucketBy: 'org' as never })).rejects.toThrow('bucketBy must be "user" or "team", got "org"');
  });

  it('validates the flag structure and says where it is wrong', () => {
    expect(() => parseFlagsFile('[]')).toThrow(FlagsFileError);
    expect(() => parseFlagsFile('{"flags": {"f": {"on": true, "variations": ["a"], "fallthrough": {}}}}')).toThrow('flags["f"].fallthrough needs a variation index or a rollout');
    expect(() =>
      parseFlagsFile(
        JSON.stringify({ flags: { f: { key: 'f', on: true, variations: ['a', 'b'], fallthrough: { rollout: { variations: [{ variation: 0, weight: 5 }, { variation: 1, weight: 5 }] } } } } }),
      ),
    ).toThrow('flags["f"].fallthrough.rollout weights add up to 10, expected 100000');
    expect(() => parseFlagsFile(JSON.stringify({ flags: { f: { key: 'g', on: true, variations: ['a'], fallthrough: { variation: 0 } } } }))).toThrow('flags["f"].key is "g", expected "f"');
    expect(parseFlagsFile(JSON.stringify({ flags: { f: { key: 'f', on: true, variations: ['a'], fallthrough: { variation: 0 } } } })).flags?.f?.on).toBe(true);
  });

  it('refuses rules, targets and prerequisites the LaunchDarkly SDK would throw on, saying where', () => {
    const flag = (extra: object) => JSON.stringify({ flags: { f: { key: 'f', on: true, variations: ['a', 'b'], fallthrough: { variation: 0 }, ...extra } } });
    expect(() => parseFlagsFile(flag({ rules: [null] }))).toThrow('flags["f"].rules[0] must be an object');
    expect(() => parseFlagsFile(flag({ rules: {} }))).toThrow('flags["f"].rules must be an array');
    expect(() => parseFlagsFile(flag({ rules: [{ clauses: {} }] }))).toThrow('flags["f"].rules[0].clauses must be an array');
    expect(() => parseFlagsFile(flag({ rules: [{ clauses: [{ attribute: 5 }] }] }))).toThrow('flags["f"].rules[0].clauses[0].attribute must be a string');
    expect(() => parseFlagsFile(flag({ rules: [{ rollout: { bucketBy: 5, variations: [] } }] }))).toThrow('flags["f"].rules[0].rollout.bucketBy must be a string');
    expect(() => parseFlagsFile(flag({ targets: {} }))).toThrow('flags["f"].targets must be an array');
    expect(() => parseFlagsFile(flag({ contextTargets: [7] }))).toThrow('flags["f"].contextTargets[0] must be an object');
    expect(() => parseFlagsFile(flag({ prerequisites: [null] }))).toThrow('flags["f"].prerequisites[0] must be an object');
    expect(() => parseFlagsFile(JSON.stringify({ segments: { s: { rules: {} } } }))).toThrow('segments["s"].rules must be an array');
    expect(() => parseFlagsFile(JSON.stringify({ segments: { s: null } }))).toThrow('segments["s"] must be an object');
    // What LaunchDarkly itself writes stays valid: empty lists, null lists, rules with clauses.
    const ok = { rules: [{ id: 'r', clauses: [{ attribute: 'key', op: 'in', values: ['u1'], contextKind: 'user' }], variation: 1 }], targets: [], contextTargets: [], prerequisites: null };
    expect(parseFlagsFile(flag(ok)).flags?.f?.rules).toHaveLength(1);
    expect(() => parseFlagsFile(JSON.stringify({ flags: { [FLAG_KEY]: buildFlag({ percent: 5, bucketBy: 'team' }, 'salt', 1) } }))).not.toThrow();
  });
});

describe('concurrent writers', () => {
  it('serialises read-modify-write so no update is lost (versions 2..21 all land)', async () => {
    const file = join(dir, 'concurrent.json');
    await writeRollout(file, { percent: 0, bucketBy: 'user' });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => writeRollout(file, { percent: i + 1, bucketBy: 'user' })));
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    expect(new Set(results.map((r) => r.salt)).size).toBe(1);
    const last = results.find((r) => r.version === 21)!;
    expect((await readRollout(file)).percent).toBe(last.percent);
    expect((await readdir(dir)).filter((n) => n.endsWith('.lock'))).toEqual([]);
  });
});
