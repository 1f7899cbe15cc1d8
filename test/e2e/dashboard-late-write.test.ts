/**
 * The dashboard's "Roll back" against `bifrost up`, through the same admin API
 * calls the page makes (end, 0 %, finish): a write by the ended ramp's process
 * that lands after the 0 % (its attempt was already past its ownership check)
 * is undone, as `bifrost rollout rollback` undoes it — until that process
 * records that it stopped. The ramp's process is this test process (a live
 * lease), its late writes go straight to the flags file as the ramp writes it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRollout, writeRollout } from '../../proxy/flags-file.ts';
import { PROCESS_STOPPED_EVENT } from '../../cli/rollout/ramp-runner.ts';
import type { RampDoc } from '../../cli/rollout/ramp-state.ts';
import { adminRollout, killAll, readJsonFile, startStack, waitFor, type Stack } from '../support/cli-stack.ts';
import { liveLease, rampDoc } from '../support/ramp-doc.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('dashboard-late-write', { LOG_LEVEL: 'warn' });
}, 120_000);
afterAll(async () => {
  await killAll();
  await stack?.stop();
});

const admin = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${stack.info.adminUrl}${path}`, {
    method,
    headers: { authorization: 'Bearer bifrost-dev-admin-token', ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe('the dashboard rollback and a late write by the ramp it ended', () => {
  it('writes 0% again after a late write, until the ramp process says it stopped', async () => {
    const flagsFile = join(stack.dir, 'flags.json');
    const rampFile = join(stack.dir, '.bifrost', 'ramp.json');
    await writeRollout(flagsFile, { percent: 10, bucketBy: 'user' });
    const lease = liveLease('lease-late');
    await mkdir(join(stack.dir, '.bifrost'), { recursive: true });
    await writeFile(rampFile, JSON.stringify(rampDoc({ id: 'ramp-late', plan: { steps: [10, 25, 50], intervalMs: 600_000, maxErrorRate: 0.01, maxP99Ms: null, minRequests: 20, rollbackTo: 0, bucketBy: 'user' }, stepIndex: 0, percent: 10, owner: lease })));

    // What the page does: end the ramp, write 0 %, and record the rollback once the shim routes by it.
    expect((await admin('POST', '/api/ramp/end')).status).toBe(200);
    expect((await admin('PUT', '/api/rollout', { percent: 0 })).body.percent).toBe(0);
    expect((await admin('POST', '/api/ramp/finish')).status).toBe(200);

    // The ramp's step write that was already on its way lands now.
    await writeRollout(flagsFile, { percent: 25, bucketBy: 'user' });
    await waitFor('the late 25% to be undone', async () => (await readRollout(flagsFile)).percent === 0, 10_000);
    await waitFor('the shim to route by 0% again', async () => (await adminRollout(stack)).percent === 0, 5_000);
    await waitFor('the warning in the log', () => /the ramp's process wrote 25% after the dashboard's rollback; writing 0% again/.test(stack.running.stderr()), 5_000);

    // Once the ramp's process has recorded that it stopped, the watch ends: later writes are someone's decision.
    const doc = (await readJsonFile<RampDoc>(rampFile))!;
    expect(doc).toMatchObject({ id: 'ramp-late', phase: 'rolled-back', percent: 0 });
    await writeFile(rampFile, JSON.stringify({ ...doc, version: doc.version + 1, history: [...doc.history, { at: new Date().toISOString(), event: PROCESS_STOPPED_EVENT, detail: lease.id }] }));
    await new Promise((r) => setTimeout(r, 3_500)); // > 2 watch intervals: the last check after the record
    await writeRollout(flagsFile, { percent: 5, bucketBy: 'user' });
    await new Promise((r) => setTimeout(r, 3_500));
    expect((await readRollout(flagsFile)).percent).toBe(5);
  }, 60_000);
});
