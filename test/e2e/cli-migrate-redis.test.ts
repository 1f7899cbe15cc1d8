/**
 * `bifrost migrate …` on the Redis store (REDIS_URL set): state in a hash,
 * every change in the audit stream, concurrent processes, idempotent
 * completion, a corrupt record refused. Every test uses its own key prefix
 * (BIFROST_STATE_PREFIX / --state-prefix) and deletes its keys afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { freePort } from '../support/redis-server.ts';
import { runCli, writeShippedFixture, writeWideFixture } from './cli-migrate-support.ts';

// Each CLI run is a fresh node + tsx process (~2 s of CPU); on a busy 2-core machine they queue.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 120_000 });

const redisUrl = inject('redisUrl');
let redis: Redis;
let dir: string;
let prefix: string;

beforeAll(() => {
  redis = new Redis(redisUrl);
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bifrost-cli-migrate-redis-'));
  prefix = `test:cli-migrate:${randomBytes(6).toString('hex')}:`;
});
afterEach(async () => {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 200);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
  await rm(dir, { recursive: true, force: true });
});

describe('migrate on the Redis store', () => {
  // The 20-way case runs in process (integration/migration-state-store.test.ts) and as
  // 20 processes on the file store; here 8 processes show the Lua compare-and-set across processes.
  it('8 concurrent `complete` processes on different steps of one squad all land, each audited once', async () => {
    const wide = await writeWideFixture(dir, 8);
    const env = { REDIS_URL: redisUrl, BIFROST_STATE_PREFIX: prefix };
    const runs = await Promise.all(
      wide.steps.map((s, i) => runCli(['migrate', 'complete', 'wide', s, '--by', `user-${i}`, '--evidence', `e${i}`, '--migrations-dir', wide.migrationsDir, '--playbooks-dir', wide.playbooksDir, '--json'], { env, timeoutMs: 400_000 })),
    );
    expect(runs.map((r) => r.code)).toEqual(wide.steps.map(() => 0));
    const hash = await redis.hgetall(`${prefix}squad:wide`);
    expect(Object.keys(hash).filter((k) => k !== '_version').sort()).toEqual(wide.steps);
    expect(hash._version).toBe('8');
    expect(await redis.xlen(`${prefix}audit`)).toBe(8);
    const list = await runCli(['migrate', 'list', '--json', '--migrations-dir', wide.migrationsDir, '--playbooks-dir', wide.playbooksDir], { env });
    expect(JSON.parse(list.stdout).squads[0]).toMatchObject({ squad: 'wide', done: 8, total: 8, complete: true });
    expect(existsSync(path.join(dir, '.bifrost'))).toBe(false);
  }, 600_000);

  it('completing the same step twice is one change and says so; reopen is audited with its reason', async () => {
    const d = await writeShippedFixture(dir);
    const args = ['--migrations-dir', d.migrationsDir, '--playbooks-dir', d.playbooksDir, '--state-prefix', prefix];
    const env = { REDIS_URL: redisUrl };
    expect((await runCli(['migrate', 'complete', 'collections', 'inventory', '--by', 'ada', '--evidence', 'reviewed', ...args], { env })).code).toBe(0);
    const again = await runCli(['migrate', 'complete', 'collections', 'inventory', '--by', 'bob', ...args], { env });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^= collections\/inventory is already done \(by ada at \S+\); nothing changed\n$/);
    expect(await redis.xlen(`${prefix}audit`)).toBe(1);
    await runCli(['migrate', 'reopen', 'collections', 'inventory', '--by', 'grace', '--reason', 'missing route', ...args], { env });
    const entries = await redis.xrange(`${prefix}audit`, '-', '+');
    expect(entries).toHaveLength(2);
    const last = JSON.parse(entries[1]![1][entries[1]![1].indexOf('entry') + 1]!);
    expect(last).toMatchObject({ squad: 'collections', step: 'inventory', action: 'reopen', by: 'grace', reason: 'missing route', previous: { status: 'done', by: 'ada' }, next: { status: 'pending' } });
    const show = JSON.parse((await runCli(['migrate', 'show', 'collections', '--json', ...args], { env })).stdout);
    expect(show.history.map((e: { action: string }) => e.action)).toEqual(['complete', 'reopen']);
  });

  it('records check results in Redis', async () => {
    const d = await writeShippedFixture(dir);
    const env = { REDIS_URL: redisUrl, BIFROST_STATE_PREFIX: prefix };
    const r = await runCli(['migrate', 'check', 'collections', 'inventory', '--json', '--migrations-dir', d.migrationsDir, '--playbooks-dir', d.playbooksDir], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, results: [{ step: 'inventory', ok: true, status: 'done' }] });
    const rec = JSON.parse((await redis.hget(`${prefix}squad:collections`, 'inventory'))!);
    expect(rec).toMatchObject({ status: 'done', by: 'check', via: 'check', lastCheck: { ok: true } });
  });

  it('a corrupt record is refused and left alone; an unreachable Redis is a clear error', async () => {
    const d = await writeShippedFixture(dir);
    const args = ['--migrations-dir', d.migrationsDir, '--playbooks-dir', d.playbooksDir];
    await redis.hset(`${prefix}squad:collections`, 'inventory', '"done"', '_version', '3');
    const r = await runCli(['migrate', 'complete', 'collections', 'register-service', '--by', 'ada', ...args], { env: { REDIS_URL: redisUrl, BIFROST_STATE_PREFIX: prefix } });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`bifrost: Redis key ${prefix}squad:collections field "inventory" is corrupt (a step record must be an object); it was left untouched\n`);
    expect(await redis.hget(`${prefix}squad:collections`, 'inventory')).toBe('"done"');
    // A corrupt audit entry is refused in one line, not a JSON stack trace.
    await redis.del(`${prefix}squad:collections`);
    const id = await redis.xadd(`${prefix}audit`, '*', 'squad', 'collections', 'step', 'inventory', 'entry', '{not json');
    const show = await runCli(['migrate', 'show', 'collections', ...args], { env: { REDIS_URL: redisUrl, BIFROST_STATE_PREFIX: prefix } });
    expect(show).toMatchObject({ code: 2, stderr: `bifrost: Redis stream ${prefix}audit entry ${id} is corrupt (its "entry" field is not an audit entry in JSON); it was left untouched\n` });
    const list = await runCli(['migrate', 'list', ...args], { env: { REDIS_URL: redisUrl, BIFROST_STATE_PREFIX: prefix } });
    expect(list.stdout).toContain(`state: redis ${redisUrl} (prefix ${prefix})`);
    const port = await freePort();
    const down = await runCli(['migrate', 'list', ...args], { env: { REDIS_URL: `redis://127.0.0.1:${port}`, BIFROST_STATE_PREFIX: prefix } });
    expect(down.code).toBe(2);
    expect(down.stderr).toContain(`cannot reach Redis at redis://127.0.0.1:${port} (REDIS_URL)`);
  });
});
