/**
 * The collections squad migrated end to end against `bifrost up` (the whole
 * stack on random ports, dev credentials), as a squad engineer would do it:
 * `migrate check`, register the service, raise the rollout to the canary's 5 %
 * (cutover still fails: users remain on Sync), ramp to 100 %, `check` again,
 * complete the manual step — on the file store, then on the Redis store.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { BIN, runCli, writeShippedFixture } from './cli-migrate-support.ts';

// Each CLI run is a fresh node + tsx process (~2 s of CPU); on a busy 2-core machine they queue.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 120_000 });

interface UpInfo {
  shimUrl: string;
  adminUrl: string;
  syncUrl: string;
  nodes: { publicUrl: string; privateUrl: string }[];
}

const ZERO_PORTS = { BIFROST_SHIM_PORT: '0', BIFROST_ADMIN_PORT: '0', BIFROST_GATEWAY_PORT: '0', BIFROST_PRIVATE_PORT: '0', SYNC_PORT: '0' };
const DEV_SERVICE_TOKEN = 'bifrost-dev-service-token';
const DEV_ADMIN_TOKEN = 'bifrost-dev-admin-token';

let up: ChildProcess;
let info: UpInfo;
let dir: string;
let dirs: { migrationsDir: string; playbooksDir: string };

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bifrost-migrate-up-'));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(REDIS_|BIFROST_|SYNC_PORT|LD_)/.test(k)) env[k] = v;
  up = spawn(process.execPath, [BIN, 'up', '--json'], { cwd: dir, env: { ...env, ...ZERO_PORTS, BIFROST_FLAGS_FILE: path.join(dir, 'flags.json') }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  up.stdout!.on('data', (d) => (out += d));
  up.stderr!.on('data', (d) => (err += d));
  info = await new Promise<UpInfo>((resolve, reject) => {
    const t = setInterval(() => {
      try {
        resolve(JSON.parse(out));
        clearInterval(t);
      } catch {
        /* not complete yet */
      }
    }, 100);
    up.once('exit', (code) => {
      clearInterval(t);
      reject(new Error(`bifrost up exited ${code}: ${err}`));
    });
  });
  // No legacy client connects in this test, so the canary's traffic minimum is waived here
  // (minRequests: 0); the 20-upgrade default is covered in integration/migration-checks.test.ts.
  dirs = await writeShippedFixture(dir, { syncUrl: info.syncUrl, extraCollections: 'stepOptions:\n  canary: { forSeconds: 0, sampleSeconds: 1, minRequests: 0 }\n' });
});

afterAll(async () => {
  if (up && up.exitCode === null) {
    up.kill('SIGINT');
    await once(up, 'exit');
  }
  await rm(dir, { recursive: true, force: true });
});

const stackArgs = () => ['--private-url', info.nodes[0]!.privateUrl, '--gateway-url', info.nodes[0]!.publicUrl, '--sync-url', info.syncUrl, '--admin-url', info.adminUrl];
const steps = (json: string) => JSON.parse(json).results.map((r: { step: string; ok?: boolean; skipped?: string; summary: string }) => `${r.step}:${r.skipped ?? (r.ok ? 'pass' : `fail ${r.summary}`)}`);

describe('migrating the collections squad against `bifrost up`', () => {
  it('file store: from the first check to the last step', async () => {
    const where = ['--migrations-dir', dirs.migrationsDir, '--playbooks-dir', dirs.playbooksDir, '--state-file', path.join(dir, 'state.json')];
    const first = await runCli(['migrate', 'check', 'collections', '--json', ...where, ...stackArgs()]);
    expect(first.code).toBe(1);
    expect(steps(first.stdout)).toEqual([
      'inventory:pass',
      'register-service:fail collections is not registered',
      'dual-publish:pass',
      'subscribe-headers:pass',
      'route-parity:blocked',
      'canary:blocked',
      'cutover:blocked',
      'decommission:manual',
    ]);
    const put = await fetch(`${info.nodes[0]!.privateUrl}/v1/services/collections`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${DEV_SERVICE_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ upstream: info.syncUrl, prefixes: ['/collection'] }),
    });
    expect(put.status).toBe(200);
    const canaryTooLow = await runCli(['migrate', 'check', 'collections', '--json', ...where, ...stackArgs()]);
    expect(canaryTooLow.code).toBe(1);
    expect(steps(canaryTooLow.stdout)).toContain("canary:fail rollout is at 0%, below the canary's 5%: run `bifrost rollout set 5`");
    const rollout = await fetch(`${info.adminUrl}/api/rollout`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ percent: 5 }),
    });
    expect(rollout.status).toBe(200);
    const second = await runCli(['migrate', 'check', 'collections', '--json', ...where, ...stackArgs()]);
    expect(steps(second.stdout)).toEqual([
      'inventory:done',
      'register-service:done',
      'dual-publish:done',
      'subscribe-headers:done',
      'route-parity:done',
      'canary:pass',
      'cutover:fail rollout is at 5%, cutover needs 100%: ramp up first (`bifrost rollout ramp --steps 25,50,100 --interval 30m`), then check again',
      'decommission:manual',
    ]);
    expect(second.code).toBe(1);
    const early = await runCli(['migrate', 'complete', 'collections', 'decommission', '--by', 'ada@example.com', '--evidence', 'https://git.example.com/sync/pull/812', ...where]);
    expect(early.code).toBe(2);
    expect(early.stderr).toContain('cannot complete collections/decommission: it depends on cutover, not done yet');
    const full = await fetch(`${info.adminUrl}/api/rollout`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ percent: 100 }),
    });
    expect(full.status).toBe(200);
    const third = await runCli(['migrate', 'check', 'collections', '--json', ...where, ...stackArgs()]);
    expect(steps(third.stdout)).toEqual([
      'inventory:done',
      'register-service:done',
      'dual-publish:done',
      'subscribe-headers:done',
      'route-parity:done',
      'canary:done',
      'cutover:pass',
      'decommission:manual',
    ]);
    expect(third.code).toBe(0);
    const done = await runCli(['migrate', 'complete', 'collections', 'decommission', '--by', 'ada@example.com', '--evidence', 'https://git.example.com/sync/pull/812', ...where]);
    expect(done.code).toBe(0);
    const list = JSON.parse((await runCli(['migrate', 'list', '--json', ...where])).stdout);
    expect(list.squads.find((s: { squad: string }) => s.squad === 'collections')).toMatchObject({ done: 8, total: 8, complete: true });
  });

  it('Redis store: the same run records state and audit in Redis', async () => {
    const redisUrl = inject('redisUrl');
    const prefix = `test:migrate-up:${randomBytes(6).toString('hex')}:`;
    const redis = new Redis(redisUrl);
    const env = { REDIS_URL: redisUrl, BIFROST_STATE_PREFIX: prefix };
    const where = ['--migrations-dir', dirs.migrationsDir, '--playbooks-dir', dirs.playbooksDir];
    try {
      // The service and the rollout are in place from the file-store run (or are set here when run alone).
      await fetch(`${info.nodes[0]!.privateUrl}/v1/services/collections`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${DEV_SERVICE_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ upstream: info.syncUrl, prefixes: ['/collection'] }),
      });
      await fetch(`${info.adminUrl}/api/rollout`, { method: 'PUT', headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ percent: 100 }) });
      const r = await runCli(['migrate', 'check', 'collections', '--json', ...where, ...stackArgs()], { env });
      expect(steps(r.stdout)).toEqual([
        'inventory:pass',
        'register-service:pass',
        'dual-publish:pass',
        'subscribe-headers:pass',
        'route-parity:pass',
        'canary:pass',
        'cutover:pass',
        'decommission:manual',
      ]);
      expect(r.code).toBe(0);
      await runCli(['migrate', 'complete', 'collections', 'decommission', '--by', 'ada', '--evidence', 'https://git.example.com/sync/pull/812', ...where], { env });
      const hash = await redis.hgetall(`${prefix}squad:collections`);
      expect(Object.entries(hash).filter(([k, v]) => k !== '_version' && JSON.parse(v).status === 'done')).toHaveLength(8);
      expect(await redis.xlen(`${prefix}audit`)).toBe(8);
    } finally {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 200);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      await redis.quit();
    }
  });
});
