/**
 * The ramp with its state in Redis (REDIS_URL set for the CLI, a unique key
 * prefix per test): a killed ramp resumes from the persisted step, a second
 * ramp is refused, pause/resume and rollback steer it from other processes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../support/redis.ts';
import { adminRollout, json, killAll, runBifrost, spawnBifrost, startStack, waitFor, type Stack } from '../support/cli-stack.ts';

interface RampDocLike {
  phase: string;
  stepIndex: number;
  stepElapsedMs: number;
  percent: number;
  paused: boolean;
  owner: { pid: number } | null;
}

let stack: Stack;
let redis: Redis;
const prefixes: string[] = [];

beforeAll(async () => {
  stack = await startStack('rollout-redis');
  redis = new Redis(testRedisUrl());
}, 180_000);
afterEach(async () => {
  await killAll();
});
afterAll(async () => {
  await killAll();
  for (const p of prefixes) await deletePrefix(testRedisUrl(), p);
  redis?.disconnect();
  await stack?.stop();
});

function withPrefix() {
  const prefix = uniquePrefix('rollout');
  prefixes.push(prefix);
  const env = { ...stack.env, REDIS_URL: testRedisUrl(), BIFROST_ROLLOUT_PREFIX: prefix };
  const cli = (args: string[], timeoutMs?: number) => runBifrost(['rollout', ...args, '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env, timeoutMs });
  const spawnRamp = (args: string[]) => spawnBifrost(['rollout', 'ramp', ...args, '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env });
  const doc = async (): Promise<RampDocLike | undefined> => {
    const raw = await redis.get(`${prefix}ramp`);
    return raw ? (JSON.parse(raw) as RampDocLike) : undefined;
  };
  return { cli, spawnRamp, doc };
}

describe('bifrost rollout ramp with the Redis store', () => {
  it('continues a killed ramp from the step persisted in Redis', async () => {
    const { cli, spawnRamp, doc } = withPrefix();
    expect((await cli(['set', '0'])).code).toBe(0);
    const args = ['--steps', '2,4,6', '--interval', '3s', '--json'];
    const first = spawnRamp(args);
    await waitFor('the ramp to reach step 2 in Redis', async () => {
      const d = await doc();
      return d && d.phase === 'running' && d.stepIndex >= 1 && d.percent === 4 ? d : undefined;
    }, 60_000, 50);
    first.child.kill('SIGKILL');
    await first.exited;
    expect(await doc()).toMatchObject({ phase: 'running', stepIndex: 1 });

    const status = await cli(['status', '--json']);
    expect(json<{ ramp: { phase: string; ownerAlive: boolean } }>(status).ramp).toMatchObject({ phase: 'running', ownerAlive: false });

    const again = await cli(['ramp', ...args], 180_000);
    expect(again.code, again.stderr).toBe(0);
    const out = json<{ outcome: string; resumed: boolean; startedAtStep: number; applied: number[] }>(again);
    expect(out).toMatchObject({ outcome: 'completed', resumed: true, startedAtStep: 1 });
    expect(out.applied).toEqual([4, 6]);
    expect(await doc()).toMatchObject({ phase: 'completed', percent: 6, owner: null });
    expect(existsSync(join(stack.dir, '.bifrost/ramp.json'))).toBe(false);
    await waitFor('the shim at 6%', async () => (await adminRollout(stack)).percent === 6, 10_000);
  }, 300_000);

  it('refuses a second ramp, pauses and resumes it, and rollback ends it', async () => {
    const { cli, spawnRamp, doc } = withPrefix();
    expect((await cli(['set', '0'])).code).toBe(0);
    const ramp = spawnRamp(['--steps', '3,6', '--interval', '5m']);
    await waitFor('the ramp to run at 3%', async () => {
      const d = await doc();
      return d && d.phase === 'running' && d.percent === 3 && d.owner?.pid === ramp.child.pid ? d : undefined;
    }, 60_000, 50);

    const second = await cli(['ramp', '--steps', '3,6', '--interval', '5m']);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/another ramp is running/);

    expect((await cli(['pause'])).code).toBe(0);
    await waitFor('paused in Redis', async () => (await doc())?.paused === true, 10_000);
    await waitFor('the ramp to report the pause', () => /paused by /.test(ramp.stdout()), 15_000);
    const frozen = (await doc())!.stepElapsedMs;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await doc())!.stepElapsedMs).toBe(frozen);

    expect((await cli(['resume'])).code).toBe(0);
    await waitFor('the clock to run again', async () => (await doc())!.stepElapsedMs > frozen, 15_000);

    const rollback = await cli(['rollback', '--json']);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(json(rollback)).toMatchObject({ percent: 0, rampEnded: { phase: 'rolled-back' } });
    expect((await ramp.exited).code).toBe(1);
    expect(await doc()).toMatchObject({ phase: 'rolled-back', percent: 0 });
  }, 300_000);
});
