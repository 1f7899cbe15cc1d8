/**
 * The dashboard's hands on the ramp (proxy/dashboard/ramp-control.ts), on a
 * real file ramp store: "end" records a rollback to 0 % that is not finished
 * yet (so the ramp record never says "rolled back" while the flag may still
 * be up), "finish" records it once the page has seen the shim route by 0 %,
 * and pause / resume refuse a ramp that is rolling back.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RampControl } from '../../proxy/dashboard/ramp-control.ts';
import type { RampDoc } from '../../cli/rollout/ramp-state.ts';
import { rampDoc } from '../support/ramp-doc.ts';
import { FileRampStore } from '../../cli/rollout/ramp-store-file.ts';

let dir: string;
let store: FileRampStore;
let control: RampControl;

function running(over: Partial<RampDoc> = {}): RampDoc {
  const at = new Date().toISOString();
  return rampDoc({
    plan: { steps: [5, 25], intervalMs: 60_000, maxErrorRate: 0.01, maxP99Ms: 250, rollbackTo: null, minRequests: 20, bucketBy: null },
    stepIndex: 1,
    lastGoodPercent: 5,
    percent: 25,
    owner: { id: 'o1', pid: 999_999, host: 'elsewhere', startedAt: at, heartbeatAt: Date.now() },
    ...over,
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-ramp-control-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  store = new FileRampStore(join(dir, `ramp-${Math.random().toString(36).slice(2)}.json`));
  control = new RampControl(store);
  await store.update(() => ({ next: running(), result: null }));
});

describe('dashboard ramp control', () => {
  it('end records a rollback to 0% in progress, without an owner, and finish records it done', async () => {
    const ended = await control.act('end', 'dashboard (test)');
    expect(ended).toMatchObject({ changed: true, noRamp: false });
    expect(ended.message).toContain('rolling back from step 2/2');
    expect(await store.read()).toMatchObject({ phase: 'rolling-back', owner: null, percent: 25, rollback: { to: 0, from: 25 } });

    const finished = await control.act('finish', 'dashboard (test)');
    expect(finished).toMatchObject({ changed: true, noRamp: false, message: 'the ramp was rolled back to 0% at step 2/2' });
    const doc = await store.read();
    expect(doc).toMatchObject({ phase: 'rolled-back', percent: 0, owner: null });
    expect(doc!.history.map((h) => h.event)).toEqual(['rolling-back', 'rolled-back']);
  });

  it('a second end (a retry after a failed 0% write) changes nothing and is not refused', async () => {
    await control.act('end', 'dashboard (test)');
    const again = await control.act('end', 'dashboard (test)');
    expect(again).toMatchObject({ changed: false, noRamp: false });
    expect(await store.read()).toMatchObject({ phase: 'rolling-back', rollback: { to: 0 } });
  });

  it('finish without an end, or on a breach rollback to another percentage, does not record a rollback', async () => {
    const early = await control.act('finish', 'dashboard (test)');
    expect(early.changed).toBe(false);
    expect(await store.read()).toMatchObject({ phase: 'running', percent: 25 });

    const decidedAt = new Date().toISOString();
    await store.update((cur) => ({ next: { ...cur!, phase: 'rolling-back', rollback: { to: 5, from: 25, message: 'breach', decidedAt } }, result: null }));
    const other = await control.act('finish', 'dashboard (test)');
    expect(other).toMatchObject({ changed: false, noRamp: true });
    expect(other.message).toContain('the ramp is rolling back to 5%');
    expect(await store.read()).toMatchObject({ phase: 'rolling-back', rollback: { to: 5 } });
  });

  it('pause and resume are refused while the ramp rolls back', async () => {
    await control.act('end', 'dashboard (test)');
    for (const action of ['pause', 'resume'] as const) {
      const r = await control.act(action, 'dashboard (test)');
      expect(r).toMatchObject({ changed: false, noRamp: true });
      expect(r.message).toContain(`the ramp is rolling back to 0%: nothing to ${action}`);
    }
    expect(await store.read()).toMatchObject({ phase: 'rolling-back', paused: false });
  });
});
