/**
 * The state store conformance suite, run against both stores: the file store
 * (`.bifrost/state.json` + lock) and the Redis store (hash + audit stream, on
 * the suite's real Redis under a unique key prefix, deleted afterwards).
 */
import { mkdtempSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { FileStateStore } from '../../cli/migration/state-store-file.ts';
import { RedisStateStore } from '../../cli/migration/state-store-redis.ts';
import type { Decision, SquadState, StateStore, StepChange } from '../../cli/migration/state-store.ts';

/** Completes `step` unless done: the decision shape every command uses. */
function completeOnce(step: string, by: string) {
  return (s: SquadState): Decision<boolean> => {
    if (s.steps[step]?.status === 'done') return { changes: [], result: false };
    const change: StepChange = { step, action: 'complete', by, evidence: `ev-${step}`, next: { status: 'done', by, at: new Date().toISOString(), via: 'manual' } };
    return { changes: [change], result: true };
  };
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 200);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

interface Impl {
  name: string;
  open(): Promise<StateStore>;
  cleanup(): Promise<void>;
}

const redisUrl = inject('redisUrl');
let admin: Redis;
beforeAll(() => {
  admin = new Redis(redisUrl);
});
afterAll(async () => {
  await admin.quit();
});

const impls: Impl[] = [
  (() => {
    let dir = '';
    return {
      name: 'file store',
      async open() {
        dir ||= mkdtempSync(path.join(tmpdir(), 'bifrost-state-'));
        return new FileStateStore(path.join(dir, '.bifrost', 'state.json'));
      },
      async cleanup() {
        if (dir) await rm(dir, { recursive: true, force: true });
        dir = '';
      },
    };
  })(),
  (() => {
    let prefix = '';
    return {
      name: 'redis store',
      async open() {
        prefix ||= `test:migration-state:${randomBytes(6).toString('hex')}:`;
        return new RedisStateStore(redisUrl, { prefix });
      },
      async cleanup() {
        if (prefix) await deleteKeys(admin, prefix);
        prefix = '';
      },
    };
  })(),
];

describe.each(impls)('$name', (impl) => {
  const opened: StateStore[] = [];
  const open = async () => {
    const s = await impl.open();
    opened.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    await impl.cleanup();
  });

  it('starts empty', async () => {
    const store = await open();
    expect(await store.read('collections')).toEqual({ squad: 'collections', steps: {}, version: 0 });
    expect(await store.audit()).toEqual([]);
  });

  it('applies a change, bumps the version, and audits who, when, what, evidence and the previous state', async () => {
    const store = await open();
    expect(await store.update('collections', completeOnce('inventory', 'ada'))).toBe(true);
    const s = await store.read('collections');
    expect(s.version).toBe(1);
    expect(s.steps.inventory).toMatchObject({ status: 'done', by: 'ada' });
    await store.update('collections', (cur) => ({
      changes: [{ step: 'inventory', action: 'reopen', by: 'grace', reason: 'nope', next: { ...cur.steps.inventory!, status: 'pending', by: 'grace', reason: 'nope' } }],
      result: null,
    }));
    const audit = await store.audit({ squad: 'collections' });
    expect(audit).toHaveLength(2);
    expect(audit[0]).toMatchObject({ squad: 'collections', step: 'inventory', action: 'complete', by: 'ada', evidence: 'ev-inventory', previous: null, next: { status: 'done' } });
    expect(audit[1]).toMatchObject({ action: 'reopen', by: 'grace', reason: 'nope', previous: { status: 'done', by: 'ada' }, next: { status: 'pending' } });
    expect(Date.parse(audit[1]!.at)).toBeGreaterThanOrEqual(Date.parse(audit[0]!.at));
    expect(await store.audit({ squad: 'other' })).toEqual([]);
    expect(await store.audit({ limit: 1 })).toEqual([audit[1]]);
  });

  it('keeps squads apart', async () => {
    const store = await open();
    await store.update('a', completeOnce('x', 'ada'));
    await store.update('b', completeOnce('y', 'bob'));
    expect(Object.keys((await store.read('a')).steps)).toEqual(['x']);
    expect(Object.keys((await store.read('b')).steps)).toEqual(['y']);
  });

  it('20 concurrent completions of different steps of one squad all land', async () => {
    const stores = await Promise.all(Array.from({ length: 4 }, () => open()));
    const steps = Array.from({ length: 20 }, (_, i) => `step-${i}`);
    const results = await Promise.all(steps.map((step, i) => stores[i % stores.length]!.update('collections', completeOnce(step, `user-${i}`))));
    expect(results.every(Boolean)).toBe(true);
    const s = await stores[0]!.read('collections');
    expect(Object.keys(s.steps).sort()).toEqual([...steps].sort());
    expect(s.version).toBe(20);
    expect(await stores[0]!.audit({ squad: 'collections' })).toHaveLength(20);
  });

  it('the same step completed concurrently is one change', async () => {
    const stores = await Promise.all(Array.from({ length: 3 }, () => open()));
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => stores[i % 3]!.update('collections', completeOnce('inventory', `user-${i}`))));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await stores[0]!.audit()).toHaveLength(1);
    expect((await stores[0]!.read('collections')).version).toBe(1);
  });

  it('a decision with no change writes nothing', async () => {
    const store = await open();
    await store.update('collections', () => ({ changes: [], result: 1 }));
    expect(await store.read('collections')).toEqual({ squad: 'collections', steps: {}, version: 0 });
    expect(await store.audit()).toEqual([]);
  });

  it('an error thrown by the decision leaves the state as it was', async () => {
    const store = await open();
    await store.update('collections', completeOnce('inventory', 'ada'));
    await expect(
      store.update('collections', () => {
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect((await store.read('collections')).version).toBe(1);
  });
});

describe('file store specifics', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bifrost-state-file-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a corrupt state file with a clear error and never overwrites it', async () => {
    const file = path.join(dir, 'state.json');
    const corrupt = '{"format":"bifrost-migration-state","version":1,"squads":{"collections":{"steps":{"inventory":{"status":"dnoe"}},"version":1}},"audit":[]}';
    await writeFile(file, corrupt);
    const store = new FileStateStore(file);
    await expect(store.read('collections')).rejects.toThrow(/state file .*state\.json is corrupt \(squad "collections" step "inventory": status must be "pending" or "done", got "dnoe"\); it was left untouched/);
    await expect(store.update('collections', completeOnce('register-service', 'ada'))).rejects.toThrow(/is corrupt/);
    expect(await readFile(file, 'utf8')).toBe(corrupt);
    await writeFile(file, '{"format": "bifrost-migration-state", "version": 1, "squads": {');
    await expect(store.update('collections', completeOnce('x', 'ada'))).rejects.toThrow(/is corrupt \(not JSON: /);
    expect(await readFile(file, 'utf8')).toBe('{"format": "bifrost-migration-state", "version": 1, "squads": {');
  });

  it('writes through a temporary file and leaves no temporary or lock file behind', async () => {
    const file = path.join(dir, 'state.json');
    const store = new FileStateStore(file);
    await Promise.all(Array.from({ length: 5 }, (_, i) => store.update('s', completeOnce(`step-${i}`, 'ada'))));
    expect(await readdir(dir)).toEqual(['state.json']);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ format: 'bifrost-migration-state', version: 1, squads: { s: { version: 5 } } });
  });
});

describe('redis store specifics', () => {
  const prefix = `test:migration-state-redis:${randomBytes(6).toString('hex')}:`;
  afterEach(async () => {
    await deleteKeys(admin, prefix);
  });

  it('keeps the current state in a hash and every change in an append-only stream', async () => {
    const store = new RedisStateStore(redisUrl, { prefix });
    try {
      await store.update('collections', completeOnce('inventory', 'ada'));
      await store.update('collections', completeOnce('register-service', 'bob'));
      const hash = await admin.hgetall(`${prefix}squad:collections`);
      expect(Object.keys(hash).sort()).toEqual(['_version', 'inventory', 'register-service']);
      expect(hash._version).toBe('2');
      expect(JSON.parse(hash.inventory!)).toMatchObject({ status: 'done', by: 'ada' });
      const stream = await admin.xrange(`${prefix}audit`, '-', '+');
      expect(stream).toHaveLength(2);
      const fields = Object.fromEntries(chunk(stream[1]![1]));
      expect(fields).toMatchObject({ squad: 'collections', step: 'register-service', action: 'complete', by: 'bob' });
      expect(JSON.parse(fields.entry!)).toMatchObject({ previous: null, evidence: 'ev-register-service' });
    } finally {
      await store.close();
    }
  });

  it('refuses a corrupt step record and leaves it untouched', async () => {
    await admin.hset(`${prefix}squad:collections`, 'inventory', '{not json', '_version', '1');
    const store = new RedisStateStore(redisUrl, { prefix });
    try {
      await expect(store.update('collections', completeOnce('register-service', 'ada'))).rejects.toThrow(/field "inventory" is corrupt \(not JSON\); it was left untouched/);
      expect(await admin.hget(`${prefix}squad:collections`, 'inventory')).toBe('{not json');
      expect(await admin.hexists(`${prefix}squad:collections`, 'register-service')).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('says which Redis it cannot reach', async () => {
    const store = new RedisStateStore('redis://127.0.0.1:1', { prefix });
    await expect(store.read('x')).rejects.toThrow(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(REDIS_URL\)/);
    await store.close();
  });
});

function chunk(flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
