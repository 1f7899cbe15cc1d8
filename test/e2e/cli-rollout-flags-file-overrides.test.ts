/**
 * `bifrost rollout` in flags-file mode on a flag with hand-added individual
 * targets and rules: status shows them with a warning, and a write (set or
 * rollback) removes them — the CLI writes the migration flag whole — and says
 * so. No shim answers here (--admin-url points nowhere): the flag is what is checked.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FLAG_KEY, buildFlag } from '../../proxy/flags-file.ts';
import { cleanEnv, json, killAll, runBifrost } from '../support/cli-stack.ts';

let dir: string;
let flagsFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-rollout-overrides-'));
  flagsFile = join(dir, 'flags.json');
});
beforeEach(async () => {
  await rm(join(dir, '.bifrost'), { recursive: true, force: true });
  const flag = {
    ...buildFlag({ percent: 10, bucketBy: 'user' }, 'salt-kept', 5),
    targets: [{ values: ['u-alice', 'u-bob'], variation: 1 }],
    rules: [{ id: 'beta', variation: 1, clauses: [{ contextKind: 'user', attribute: 'key', op: 'startsWith', values: ['beta-'] }] }],
  };
  await writeFile(flagsFile, JSON.stringify({ flags: { [FLAG_KEY]: flag } }, null, 2));
});
afterEach(async () => {
  await killAll();
});
afterAll(async () => {
  await killAll();
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[]) => runBifrost(['rollout', ...args, '--flags-file', flagsFile, '--admin-url', 'http://127.0.0.1:9'], { cwd: dir, env: cleanEnv() });
const fileFlag = async () => (JSON.parse(await readFile(flagsFile, 'utf8')) as { flags: Record<string, { targets: unknown[]; rules: unknown[]; salt: string }> }).flags[FLAG_KEY]!;

describe('flags-file mode with hand-added targets and rules', () => {
  it('status shows them and warns; set removes them and says so', async () => {
    const status = await cli(['status', '--json']);
    expect(json(status)).toMatchObject({
      percent: 10,
      flag: {
        target: 'file',
        overrides: [
          { kind: 'target', contextKind: 'user', contexts: 2, serves: 'bifrost', bifrostPercent: 100 },
          { kind: 'rule', rule: 'beta', serves: 'bifrost', bifrostPercent: 100 },
        ],
        overrideWarning: expect.stringMatching(/^the flag also has 1 individual target \(2 contexts\) and 1 rule serving "bifrost": .*10% does not apply to every context$/),
      },
    });
    expect((await cli(['status'])).stdout).toMatch(/Overrides warning: the flag also has 1 individual target \(2 contexts\) and 1 rule serving "bifrost"/);

    const set = await cli(['set', '25']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/warning: this write removed the flag's 1 individual target \(2 contexts\) and 1 rule serving "bifrost" from .*flags\.json \(the CLI writes the migration flag whole, keeping only its salt\): 25% now applies to every context/);
    expect(await fileFlag()).toMatchObject({ targets: [], rules: [], salt: 'salt-kept' });
    expect(json(await cli(['status', '--json']))).toMatchObject({ percent: 25, flag: { overrides: [], overrideWarning: null } });
  }, 120_000);

  it('rollback removes them too: 0% is then everyone on Sync, and it says so', async () => {
    const r = await cli(['rollback', '--json']);
    // No shim: the drain cannot be asked (exit 1); the flag write is what is checked.
    expect(json(r)).toMatchObject({ percent: 0, target: 'file', overrides: [], warnings: [expect.stringMatching(/removed the flag's 1 individual target \(2 contexts\) and 1 rule serving "bifrost" .*: 0% now applies to every context, so everyone is on Sync/)] });
    expect(r.stderr).toMatch(/warning: this write removed the flag's/);
    expect(await fileFlag()).toMatchObject({ targets: [], rules: [] });
  }, 120_000);
});
