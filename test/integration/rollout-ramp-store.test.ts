/**
 * The ramp stores, one conformance suite for both (file and Redis): atomic
 * read-decide-write under concurrency, versions, corrupt state refused and
 * left untouched. Plus the runner on a real flags file: a ramp that cannot
 * read any metrics rolls back instead of ramping blind.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRollout, writeRollout } from '../../proxy/flags-file.ts';
import { FileFlagTarget } from '../../cli/rollout/flag-target-file.ts';
import { MetricsSampler } from '../../cli/rollout/metrics-window.ts';
import { PlainRampReporter } from '../../cli/rollout/progress-bar.ts';
import { runRamp } from '../../cli/rollout/ramp-runner.ts';
import { rampDoc } from '../support/ramp-doc.ts';
import { FileRampStore } from '../../cli/rollout/ramp-store-file.ts';
import { RedisRampStore } from '../../cli/rollout/ramp-store-redis.ts';
import type { RampStore } from '../../cli/rollout/ramp-store.ts';
import { ShimAdminClient } from '../../cli/rollout/shim-admin-client.ts';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../support/redis.ts';
import { startRedisServer } from '../support/redis-server.ts';
import { retrying } from '../../cli/rollout/retry.ts';

let dir: string;
const prefixes: string[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-ramp-store-'));
});
afterAll(async () => {
  for (const p of prefixes) await deletePrefix(testRedisUrl(), p);
  await rm(dir, { recursive: true, force: true });
});


interface Flavour {
  name: string;
  open(): RampStore;
  corrupt(text: string): Promise<void>;
  raw(): Promise<string | null>;
}

let n = 0;
function fileFlavour(): Flavour {
  const file = join(dir, `ramp-${++n}.json`);
  return {
    name: 'file',
    open: () => new FileRampStore(file),
    corrupt: (text) => writeFile(file, text),
    raw: () => readFile(file, 'utf8').catch(() => null),
  };
}

function redisFlavour(): Flavour {
  const prefix = uniquePrefix('ramp-store');
  prefixes.push(prefix);
  return {
    name: 'redis',
    open: () => new RedisRampStore(testRedisUrl(), prefix),
    async corrupt(text) {
      const r = new Redis(testRedisUrl());
      await r.set(`${prefix}ramp`, text);
      r.disconnect();
    },
    async raw() {
      const r = new Redis(testRedisUrl());
      const v = await r.get(`${prefix}ramp`);
      r.disconnect();
      return v;
    },
  };
}

describe.each([
  ['file', fileFlavour],
  ['redis', redisFlavour],
] as const)('ramp store (%s)', (_name, make) => {
  it('starts empty, writes what decide returns, and bumps the version', async () => {
    const f = make();
    const store = f.open();
    try {
      expect(await store.read()).toBeNull();
      const r = await store.update((cur) => ({ next: rampDoc({ percent: cur ? 99 : 1 }), result: 'created' }));
      expect(r).toBe('created');
      expect(await store.read()).toMatchObject({ percent: 1, version: 1 });
      const unchanged = await store.update((cur) => ({ result: cur!.percent }));
      expect(unchanged).toBe(1);
      expect((await store.read())!.version).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('loses no update when 20 writers change the document at once', async () => {
    const f = make();
    const first = f.open();
    await first.update(() => ({ next: rampDoc(), result: null }));
    const stores = Array.from({ length: 20 }, () => f.open());
    try {
      await Promise.all(stores.map((s) => s.update((cur) => ({ next: { ...cur!, stepElapsedMs: cur!.stepElapsedMs + 1 }, result: null }))));
      expect(await first.read()).toMatchObject({ stepElapsedMs: 20, version: 21 });
    } finally {
      await Promise.all([first, ...stores].map((s) => s.close()));
    }
  });

  it('refuses corrupt state with a clear error and leaves it untouched', async () => {
    const f = make();
    await f.corrupt('{"format":"something-else"');
    const store = f.open();
    try {
      await expect(store.read()).rejects.toThrow(/corrupt.*left untouched/);
      await expect(store.update(() => ({ next: rampDoc(), result: null }))).rejects.toThrow(/corrupt/);
      expect(await f.raw()).toBe('{"format":"something-else"');
    } finally {
      await store.close();
    }
  });
});

describe('runRamp without metrics', () => {
  it('rolls back to the starting percentage when no metrics could be read during a step', async () => {
    const flags = join(dir, 'flags-blind.json');
    await writeRollout(flags, { percent: 3, bucketBy: 'user' });
    const store = new FileRampStore(join(dir, 'ramp-blind.json'));
    const lines: string[] = [];
    const sink = { write: (s: string) => (lines.push(s), true) } as unknown as NodeJS.WritableStream;
    const admin = new ShimAdminClient('http://127.0.0.1:9', 'token', 500);
    const out = await runRamp(
      { plan: { steps: [10, 20], intervalMs: 400, maxErrorRate: 0.01, maxP99Ms: 250, rollbackTo: null, minRequests: 1, bucketBy: null }, resume: false, restart: false },
      { store, flag: new FileFlagTarget(flags), sampler: new MetricsSampler({ admin }), reporter: new PlainRampReporter(sink, 1000), admin },
    );
    expect(out.kind).toBe('rolled-back');
    expect(out.rolledBackTo).toBe(3);
    expect(out.applied).toEqual([10]);
    expect(out.breaches[0]!.guard).toBe('metrics-unavailable');
    expect(out.breaches[0]!.text).toMatch(/no metrics could be read during the step \(.*shim admin API unreachable/);
    expect(out.drain).toHaveProperty('error');
    expect((await readRollout(flags)).percent).toBe(3);
    expect(await store.read()).toMatchObject({ phase: 'rolled-back', owner: null, percent: 3 });
    expect(lines.join('')).toMatch(/guard breached at step 1\/2 \(10%\)/);
  });
});

describe('Redis ramp store through a Redis outage', () => {
  it('keeps working after Redis was down for seconds (ioredis keeps reconnecting; calls are retried)', async () => {
    const redis = await startRedisServer();
    const store = new RedisRampStore(redis.url, uniquePrefix('ramp-blip'));
    let again: Awaited<ReturnType<typeof startRedisServer>> | undefined;
    try {
      await store.update(() => ({ next: rampDoc({ percent: 5 }), result: null }));
      await redis.stop();
      // Down for 2 s (the old strategy gave up for good after ~600 ms): a call fails with one clear, transient line…
      await expect(store.read()).rejects.toThrow(/cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ \(REDIS_URL\)/);
      const back = new Promise<void>((resolve) => setTimeout(() => void startRedisServer([], redis.port).then((r) => ((again = r), resolve())), 2000));
      // …and the retried call succeeds once Redis is back (the data was not persisted: an empty store).
      const retries: string[] = [];
      const read = await retrying('reading the ramp state', () => store.read(), { forMs: 30_000, minWaitMs: 100, maxWaitMs: 500, onRetry: (l) => retries.push(l) });
      await back;
      expect(read).toBeNull();
      expect(retries.length).toBeGreaterThan(0);
      await store.update(() => ({ next: rampDoc({ percent: 7 }), result: null }));
      expect(await store.read()).toMatchObject({ percent: 7 });
    } finally {
      await store.close();
      await again?.stop();
      await redis.stop().catch(() => {});
    }
  }, 60_000);
});
