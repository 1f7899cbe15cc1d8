/**
 * `bifrost rollout set` in live LaunchDarkly mode against a local server that
 * checks the exact REST requests (path, headers, semantic patch body) and
 * answers as LaunchDarkly does, including its 401, 409 and 429 errors.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type http from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startUpstream, type Recorded } from '../support/upstream.ts';
import { cleanEnv, json, killAll, runBifrost } from '../support/cli-stack.ts';

const TOKEN = 'api-0123456789abcdef';
const PROJECT = 'sync-platform';
const ENVIRONMENT = 'production';
const FLAG_PATH = `/api/v2/flags/${PROJECT}/bifrost-sync-migration`;
const SYNC_ID = '5f2a1c3e-0000-4000-8000-00000000aaaa';
const BIFROST_ID = '5f2a1c3e-0000-4000-8000-00000000bbbb';

interface EnvConfig {
  on: boolean;
  _version: number;
  offVariation: number;
  fallthrough: { variation?: number; rollout?: { variations: { variation: number; weight: number }[]; bucketBy?: string; contextKind?: string } };
  targets?: { values: string[]; variation: number; contextKind?: string }[];
  contextTargets?: { values: string[]; variation: number; contextKind?: string }[];
  rules?: { _id: string; description?: string; variation?: number; clauses: unknown[] }[];
}

/** A tiny LaunchDarkly: one flag, GET and semantic-patch PATCH, with scripted failures. */
class FakeLaunchDarkly {
  env: EnvConfig = { on: true, _version: 7, offVariation: 0, fallthrough: { variation: 0 } };
  /** Answers to give to the next PATCH calls before handling them normally. */
  patchScript: ((res: http.ServerResponse) => void)[] = [];
  getScript: ((res: http.ServerResponse) => void)[] = [];
  patchTimes: number[] = [];

  flag() {
    return {
      key: 'bifrost-sync-migration',
      _version: 12,
      kind: 'multivariate',
      variations: [
        { _id: SYNC_ID, value: 'sync', name: 'Sync' },
        { _id: BIFROST_ID, value: 'bifrost', name: 'Bifrost' },
      ],
      environments: { [ENVIRONMENT]: this.env },
    };
  }

  handle(req: Recorded, res: http.ServerResponse): void {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== TOKEN) return send(401, { code: 'unauthorized', message: 'Invalid access token' });
    const url = new URL(req.url, 'http://ld.invalid');
    if (url.pathname !== FLAG_PATH) return send(404, { code: 'not_found', message: 'Unknown resource' });
    if (req.method === 'GET') {
      const scripted = this.getScript.shift();
      if (scripted) return scripted(res);
      if (url.searchParams.get('env') !== ENVIRONMENT) return send(400, { code: 'invalid_request', message: 'env expected' });
      return send(200, this.flag());
    }
    if (req.method === 'PATCH') {
      this.patchTimes.push(Date.now());
      const scripted = this.patchScript.shift();
      if (scripted) return scripted(res);
      if (req.headers['content-type'] !== 'application/json; domain-model=launchdarkly.semanticpatch') return send(400, { code: 'invalid_request', message: 'not a semantic patch' });
      const body = JSON.parse(req.body) as { environmentKey: string; instructions: Record<string, unknown>[] };
      if (body.environmentKey !== ENVIRONMENT) return send(400, { code: 'invalid_request', message: 'environmentKey' });
      for (const ins of body.instructions) {
        if (ins.kind === 'turnFlagOn') this.env.on = true;
        else if (ins.kind === 'turnFlagOff') this.env.on = false;
        else if (ins.kind === 'updateFallthroughVariationOrRollout') {
          const weights = ins.rolloutWeights as Record<string, number>;
          this.env.fallthrough = {
            rollout: {
              variations: [
                { variation: 0, weight: weights[SYNC_ID]! },
                { variation: 1, weight: weights[BIFROST_ID]! },
              ],
              bucketBy: ins.rolloutBucketBy as string,
              contextKind: ins.rolloutContextKind as string,
            },
          };
        } else return send(400, { code: 'invalid_request', message: `unknown instruction ${String(ins.kind)}` });
      }
      this.env._version += 1;
      return send(200, this.flag());
    }
    send(405, { code: 'method_not_allowed', message: req.method });
  }
}

let ld: FakeLaunchDarkly;
let server: Awaited<ReturnType<typeof startUpstream>>;
let dir: string;

beforeAll(async () => {
  server = await startUpstream((req, res) => ld.handle(req, res));
  dir = await mkdtemp(join(tmpdir(), 'bifrost-rollout-ld-'));
});
beforeEach(() => {
  ld = new FakeLaunchDarkly();
  server.requests.length = 0;
});
afterEach(async () => {
  await killAll();
});
afterAll(async () => {
  await killAll();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const ldEnv = (token = TOKEN) => cleanEnv({ LD_API_TOKEN: token, LD_PROJECT_KEY: PROJECT, LD_ENVIRONMENT_KEY: ENVIRONMENT, LD_BASE_URI: server.url });
const cli = (args: string[], env = ldEnv()) => runBifrost(['rollout', ...args, '--admin-url', 'http://127.0.0.1:9'], { cwd: dir, env });

describe('bifrost rollout set against LaunchDarkly (REST, semantic patch)', () => {
  it('reads the flag, then patches the fallthrough rollout with the exact semantic patch', async () => {
    const r = await cli(['set', '25', '--bucket-by', 'team', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ percent: 25, bucketBy: 'team', target: 'launchdarkly', version: 8 });

    expect(server.requests.map((q) => `${q.method} ${q.url}`)).toEqual([`GET ${FLAG_PATH}?env=${ENVIRONMENT}`, `PATCH ${FLAG_PATH}`]);
    const [get, patch] = server.requests as [Recorded, Recorded];
    expect(get.headers.authorization).toBe(TOKEN); // LaunchDarkly takes the token itself, no "Bearer"
    expect(patch.headers.authorization).toBe(TOKEN);
    expect(patch.headers['content-type']).toBe('application/json; domain-model=launchdarkly.semanticpatch');
    const body = JSON.parse(patch.body) as { environmentKey: string; comment: string; instructions: unknown[] };
    expect(body.environmentKey).toBe(ENVIRONMENT);
    expect(body.comment).toMatch(/^bifrost rollout set 25% --bucket-by team by /);
    expect(body.instructions).toEqual([
      {
        kind: 'updateFallthroughVariationOrRollout',
        rolloutWeights: { [BIFROST_ID]: 25_000, [SYNC_ID]: 75_000 },
        rolloutBucketBy: 'key',
        rolloutContextKind: 'team',
      },
    ]);
    expect(ld.env.fallthrough.rollout!.variations).toEqual([
      { variation: 0, weight: 75_000 },
      { variation: 1, weight: 25_000 },
    ]);

    // Status reads the live flag back (the shim admin API is down here: exit 1, flag still shown).
    const status = await cli(['status', '--json']);
    expect(status.code).toBe(1);
    expect(json(status)).toMatchObject({ percent: 25, bucketBy: 'team', flag: { target: 'launchdarkly', percent: 25 }, shim: { reachable: false } });

    // Without --bucket-by the flag's context kind is kept.
    const raise = await cli(['set', '40']);
    expect(raise.code, raise.stderr).toBe(0);
    expect(raise.stdout).toMatch(/40% of teams on Bifrost \(LaunchDarkly flag bifrost-sync-migration \(project sync-platform, environment production\)/);
    const last = JSON.parse(server.requests.at(-1)!.body) as { instructions: Record<string, unknown>[] };
    expect(last.instructions[0]).toMatchObject({ rolloutWeights: { [BIFROST_ID]: 40_000, [SYNC_ID]: 60_000 }, rolloutContextKind: 'team' });
  }, 240_000);

  it('turns targeting on when the flag is off in the environment, and says so', async () => {
    ld.env.on = false;
    const r = await cli(['set', '5']);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(server.requests.at(-1)!.body) as { instructions: { kind: string }[] };
    expect(body.instructions.map((i) => i.kind)).toEqual(['turnFlagOn', 'updateFallthroughVariationOrRollout']);
    expect(r.stdout).toMatch(/note: targeting was off in environment production/);
    expect(ld.env.on).toBe(true);
  }, 240_000);

  it('reports a 401 in one clear line and exits 2', async () => {
    const r = await cli(['set', '10'], ldEnv('api-wrong'));
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe('bifrost: LaunchDarkly rejected the access token (401 unauthorized: Invalid access token): check LD_API_TOKEN');
    expect(server.requests.filter((q) => q.method === 'PATCH')).toHaveLength(0);
  }, 240_000);

  it('reports a 409 in one clear line and exits 1', async () => {
    ld.patchScript.push((res) => {
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'optimistic_locking_error', message: 'Conflict: the flag was updated by someone else' }));
    });
    const r = await cli(['set', '10']);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^bifrost: LaunchDarkly refused to change flag "bifrost-sync-migration" \(409 optimistic_locking_error: Conflict: the flag was updated by someone else\)/);
    expect(ld.env.fallthrough).toEqual({ variation: 0 }); // unchanged
  }, 240_000);

  it('retries a 429 after X-Ratelimit-Reset, then succeeds', async () => {
    let resetAt = 0;
    ld.patchScript.push((res) => {
      resetAt = Date.now() + 800;
      res.writeHead(429, { 'content-type': 'application/json', 'x-ratelimit-reset': String(resetAt) });
      res.end(JSON.stringify({ code: 'rate_limited', message: 'You have been rate limited.' }));
    });
    const r = await cli(['set', '15', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ percent: 15 });
    expect(ld.patchTimes).toHaveLength(2);
    expect(ld.patchTimes[1]!).toBeGreaterThanOrEqual(resetAt - 5); // waited for the reset, not before
    expect(r.stderr).toMatch(/LaunchDarkly rate limit \(429\): retrying in 0\.\d s/);
    expect(ld.env.fallthrough.rollout!.variations[1]).toEqual({ variation: 1, weight: 15_000 });
  }, 240_000);

  it('retries a 429 after Retry-After seconds too, and gives up with one line when it persists', async () => {
    ld.getScript.push((res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ code: 'rate_limited', message: 'slow down' }));
    });
    const ok = await cli(['set', '20']);
    expect(ok.code, ok.stderr).toBe(0);
    const gets = server.requests.filter((q) => q.method === 'GET');
    expect(gets).toHaveLength(2);

    for (let i = 0; i < 10; i++) {
      ld.patchScript.push((res) => {
        res.writeHead(429, { 'content-type': 'application/json', 'x-ratelimit-reset': String(Date.now() + 50) });
        res.end(JSON.stringify({ code: 'rate_limited', message: 'You have been rate limited.' }));
      });
    }
    const r = await cli(['set', '30']);
    expect(r.code).toBe(1);
    const errorLines = r.stderr.trim().split('\n').filter((l) => l.startsWith('bifrost:'));
    expect(errorLines).toEqual([expect.stringMatching(/^bifrost: LaunchDarkly kept rate limiting \(429 rate_limited: You have been rate limited\.\) after 6 attempts/)]);
  }, 240_000);

  it('retries a 5xx and a dropped connection with backoff, saying so, then succeeds', async () => {
    ld.getScript.push((res) => res.socket?.destroy()); // the connection drops (a network blip)
    ld.patchScript.push((res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'service_unavailable', message: 'try again' }));
    });
    const r = await cli(['set', '35', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ percent: 35 });
    expect(r.stderr).toMatch(/LaunchDarkly unreachable \(.*\): retrying in \d+\.\d s \(attempt 2 of 6\)/);
    expect(r.stderr).toMatch(/LaunchDarkly server error \(503 service_unavailable: try again\): retrying in \d+\.\d s \(attempt 2 of 6\)/);
    expect(ld.env.fallthrough.rollout!.variations[1]).toEqual({ variation: 1, weight: 35_000 });
    // No shim answers at --admin-url here: the change is made, and the CLI says it could not confirm the shim applies it.
    expect(r.stderr).toMatch(/warning: could not confirm that the shim applies 35%: shim admin API unreachable at http:\/\/127\.0\.0\.1:9/);
  }, 240_000);

  it('refuses a partial LaunchDarkly configuration with exit 2', async () => {
    const r = await runBifrost(['rollout', 'set', '10'], { cwd: dir, env: cleanEnv({ LD_API_TOKEN: TOKEN }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/missing: LD_PROJECT_KEY, LD_ENVIRONMENT_KEY/);
  }, 240_000);
});

/** Contexts pinned to Bifrost by hand in LaunchDarkly: two targeted users (plus LaunchDarkly's empty user placeholder in contextTargets), a targeted team, and a rule. */
function pinToBifrost(env: EnvConfig): void {
  env.targets = [{ values: ['u-alice', 'u-bob'], variation: 1, contextKind: 'user' }];
  env.contextTargets = [
    { values: [], variation: 1, contextKind: 'user' },
    { values: ['t-core'], variation: 1, contextKind: 'team' },
  ];
  env.rules = [{ _id: 'rule-1', description: 'beta testers', variation: 1, clauses: [{ attribute: 'email', op: 'endsWith', values: ['@beta.example'] }] }];
}

describe('individual targets and rules in LaunchDarkly (they come before the percentage)', () => {
  it('set warns when targets and a rule serve "bifrost", and status shows them (text and --json)', async () => {
    ld.env.fallthrough = { rollout: { variations: [{ variation: 0, weight: 90_000 }, { variation: 1, weight: 10_000 }], bucketBy: 'key', contextKind: 'user' } };
    pinToBifrost(ld.env);
    const set = await cli(['set', '0']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/warning: the flag also has 2 individual targets \(3 contexts\) and 1 rule serving "bifrost": .*0% is not everyone on Sync: change or remove them in LaunchDarkly/);
    const body = JSON.parse(server.requests.at(-1)!.body) as { instructions: { kind: string }[] };
    expect(body.instructions.map((i) => i.kind)).toEqual(['updateFallthroughVariationOrRollout']); // `set` never turns targeting off
    expect(ld.env.on).toBe(true);

    const setJson = await cli(['set', '0', '--json']);
    expect(setJson.code, setJson.stderr).toBe(0);
    expect(json(setJson)).toMatchObject({ percent: 0, warnings: [expect.stringMatching(/1 rule serving "bifrost"/)], overrides: expect.arrayContaining([expect.objectContaining({ kind: 'rule', rule: 'beta testers', serves: 'bifrost', bifrostPercent: 100 })]) });
    expect(setJson.stderr).toMatch(/warning: the flag also has 2 individual targets/);

    const status = await cli(['status', '--json']);
    const flag = (json(status) as { flag: { percent: number; on: boolean; overrides: { kind: string; contexts?: number; contextKind?: string; serves: string }[]; overrideWarning: string | null } }).flag;
    expect(flag.percent).toBe(0);
    expect(flag.on).toBe(true);
    expect(flag.overrides).toEqual([
      { kind: 'target', contextKind: 'user', contexts: 2, serves: 'bifrost', bifrostPercent: 100 },
      { kind: 'target', contextKind: 'team', contexts: 1, serves: 'bifrost', bifrostPercent: 100 },
      { kind: 'rule', rule: 'beta testers', serves: 'bifrost', bifrostPercent: 100 },
    ]);
    expect(flag.overrideWarning).toMatch(/2 individual targets \(3 contexts\) and 1 rule serving "bifrost"/);
    const text = await cli(['status']);
    expect(text.stdout).toMatch(/Overrides warning: the flag also has 2 individual targets \(3 contexts\) and 1 rule serving "bifrost".*0% is not everyone on Sync/);

    // At 100% the same targets agree with the percentage: shown, no warning.
    const full = await cli(['set', '100']);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).not.toMatch(/warning: the flag also has/);
    expect((await cli(['status'])).stdout).toMatch(/Overrides 2 individual targets \(3 contexts\) and 1 rule serving "bifrost" \(in line with 100%\)/);
  }, 240_000);

  it('rollback also turns targeting off when the off variation is "sync": the rule and targets serve Sync too', async () => {
    ld.env.fallthrough = { rollout: { variations: [{ variation: 0, weight: 75_000 }, { variation: 1, weight: 25_000 }], bucketBy: 'key', contextKind: 'user' } };
    pinToBifrost(ld.env);
    const r = await cli(['rollback', '--json']);
    // No shim answers at --admin-url: the drain fails (exit 1); the flag change is what is checked here.
    const patches = server.requests.filter((q) => q.method === 'PATCH');
    expect(patches).toHaveLength(1);
    const body = JSON.parse(patches[0]!.body) as { comment: string; instructions: Record<string, unknown>[] };
    expect(body.comment).toMatch(/^bifrost rollout rollback by /);
    expect(body.instructions).toEqual([
      { kind: 'updateFallthroughVariationOrRollout', rolloutWeights: { [BIFROST_ID]: 0, [SYNC_ID]: 100_000 }, rolloutBucketBy: 'key', rolloutContextKind: 'user' },
      { kind: 'turnFlagOff' },
    ]);
    expect(ld.env.on).toBe(false);
    const out = json(r) as { percent: number; on: boolean; notes: string[]; warnings: string[]; overrides: unknown[] };
    expect(out).toMatchObject({ percent: 0, on: false, warnings: [], overrides: [] });
    expect(out.notes).toEqual([expect.stringMatching(/^turned targeting off in environment production: its off variation is "sync", so everyone gets Sync, including the contexts of its 2 individual targets \(3 contexts\) and 1 rule serving "bifrost"/)]);

    const text = await cli(['status']);
    expect(text.stdout).toMatch(/Rollout +0% on Bifrost.*targeting off: everyone gets the off variation/);
    expect(text.stdout).not.toMatch(/Overrides/);
    expect(json(await cli(['status', '--json']))).toMatchObject({ percent: 0, flag: { on: false, overrides: [], overrideWarning: null } });

    // A second rollback leaves targeting off (no turnFlagOn), and `set` turns it on again — and warns.
    await cli(['rollback']);
    const again = JSON.parse(server.requests.filter((q) => q.method === 'PATCH').at(-1)!.body) as { instructions: { kind: string }[] };
    expect(again.instructions.map((i) => i.kind)).toEqual(['updateFallthroughVariationOrRollout']);
    expect(ld.env.on).toBe(false);
    const set = await cli(['set', '5']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/note: targeting was off in environment production \(everyone got the off variation, "sync"\); turned it on/);
    expect(set.stdout).toMatch(/warning: the flag also has 2 individual targets \(3 contexts\) and 1 rule serving "bifrost"/);
    expect(ld.env.on).toBe(true);
  }, 240_000);

  it('rollback leaves targeting on when the off variation is not "sync", and says which contexts stay on Bifrost', async () => {
    ld.env.offVariation = 1; // off = everyone on Bifrost: turning it off would be no rollback
    ld.env.fallthrough = { variation: 1 };
    ld.env.rules = [{ _id: 'rule-9', variation: 1, clauses: [] }];
    const r = await cli(['rollback']);
    const body = JSON.parse(server.requests.filter((q) => q.method === 'PATCH').at(-1)!.body) as { instructions: { kind: string }[] };
    expect(body.instructions.map((i) => i.kind)).toEqual(['updateFallthroughVariationOrRollout']);
    expect(ld.env.on).toBe(true);
    expect(r.stdout).toMatch(/! rollout set to 0%: everyone but the contexts of the flag's 1 rule serving "bifrost" is routed to Sync/);
    expect(r.stdout).toMatch(/warning: the flag also has 1 rule serving "bifrost": .*0% is not everyone on Sync — targeting was left on because the flag's off variation is "bifrost", not "sync"/);
  }, 240_000);
});
