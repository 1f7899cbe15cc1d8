/**
 * `bifrost simulate` against `bifrost up`: real sails.io.js clients through
 * the shim while the flag is ramped 0 → 50 → 100; every one ends on Bifrost,
 * and nothing a steady subscriber should have received is missing. The real
 * rollout is put back where it was afterwards (also on Ctrl-C), and a running
 * ramp is never fought.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminRollout, json, killAll, runBifrost, spawnBifrost, startStack, waitFor, type Stack } from '../support/cli-stack.ts';
import { liveLease, rampDoc } from '../support/ramp-doc.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('simulate');
}, 120_000);
afterAll(async () => {
  await killAll();
  await stack?.stop();
});

describe('bifrost simulate', () => {
  const setRollout = async (percent: number) => {
    const res = await fetch(`${stack.info.adminUrl}/api/rollout`, {
      method: 'PUT',
      headers: { authorization: 'Bearer bifrost-dev-admin-token', 'content-type': 'application/json' },
      body: JSON.stringify({ percent }),
    });
    expect(res.status).toBe(200);
  };

  it('ramps 0 → 50 → 100 with real legacy clients and loses nothing, then puts the rollout back', async () => {
    await setRollout(7);
    const r = await runBifrost(
      ['simulate', '--json', '--clients', '24', '--ramp', '0,50,100', '--every', '4s', '--collections', '4', '--updates-per-sec', '5', '--shim', stack.info.shimUrl, '--admin-url', stack.info.adminUrl],
      { cwd: stack.dir, env: stack.env },
    );
    const out = json<{ ok: boolean; clients: number; onBackend: { sync: number; bifrost: number }; missed: number; expected: number; delivered: number; updates: number; reconnects: number; failedRequests: number; failures: string[]; startPercent: number; restored: boolean }>(r);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    expect(out.ok).toBe(true);
    expect(out).toMatchObject({ startPercent: 7, restored: true });
    expect((await adminRollout(stack)).percent).toBe(7);
    expect(out.onBackend).toEqual({ sync: 0, bifrost: 24 });
    expect(out.missed).toBe(0);
    expect(out.failedRequests, out.failures.join('\n')).toBe(0);
    expect(out.updates).toBeGreaterThan(5);
    expect(out.expected).toBeGreaterThan(0);
    // Each client moved at most once per step that changed its backend.
    expect(out.reconnects).toBeGreaterThanOrEqual(24);
    expect(out.reconnects).toBeLessThanOrEqual(48);
  }, 120_000);

  it('Ctrl-C stops the ramp early and puts the rollout back', async () => {
    await setRollout(3);
    const sim = spawnBifrost(['simulate', '--clients', '4', '--ramp', '0,100', '--every', '60s', '--collections', '2', '--shim', stack.info.shimUrl, '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env: stack.env });
    // Non-TTY: one line per tick once the clients are connected and the first step (0 %) is applied.
    await waitFor('the simulation to be running', () => sim.stdout().includes('step 1/2'), 60_000);
    expect((await adminRollout(stack)).percent).toBe(0);
    sim.child.kill('SIGINT');
    const { code } = await sim.exited;
    expect(code, sim.stderr()).toBe(130);
    expect(sim.stdout()).toMatch(/\nINTERRUPTED: 4 clients, /);
    expect(sim.stdout()).toContain('rollout put back to 3% (where it was before the simulation)');
    expect((await adminRollout(stack)).percent).toBe(3);
  }, 120_000);

  it('refuses to start while a ramp is running, and leaves the rollout alone', async () => {
    await setRollout(11);
    const ramp = rampDoc({
      version: 3,
      id: 'ramp-test',
      plan: { steps: [5, 25, 100], intervalMs: 600_000, maxErrorRate: 0.01, maxP99Ms: null, minRequests: 20, rollbackTo: 0, bucketBy: 'user' },
      stepIndex: 1,
      stepElapsedMs: 1000,
      lastGoodPercent: 5,
      percent: 25,
      owner: liveLease(),
    });
    await mkdir(join(stack.dir, '.bifrost'), { recursive: true });
    await writeFile(join(stack.dir, '.bifrost/ramp.json'), JSON.stringify(ramp));
    try {
      const r = await runBifrost(['simulate', '--clients', '2', '--shim', stack.info.shimUrl, '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env: stack.env });
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^bifrost: a ramp is running \(pid \d+ on \S+, heartbeat .* ago, at step 2\/3 \(25%\)\): bifrost simulate sets the rollout itself and would fight it; wait for the ramp to finish, or pause it \(`bifrost rollout pause`\) or stop it \(`bifrost rollout rollback`\) first\n$/);
      expect((await adminRollout(stack)).percent).toBe(11);

      // A breached ramp whose rollback never landed (its process died): simulate would move the rollout away from it.
      const unfinishedRollback = { ...ramp, phase: 'rolling-back', owner: null, rollback: { to: 5, from: 25, message: 'breach', decidedAt: new Date().toISOString() } };
      await writeFile(join(stack.dir, '.bifrost/ramp.json'), JSON.stringify(unfinishedRollback));
      const r2 = await runBifrost(['simulate', '--clients', '2', '--shim', stack.info.shimUrl, '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env: stack.env });
      expect(r2.code).toBe(2);
      expect(r2.stderr).toBe('bifrost: a ramp breached and its rollback to 5% is unfinished: bifrost simulate would move the rollout away from it; finish it first (`bifrost rollout ramp --resume` or `bifrost rollout rollback`)\n');
      expect((await adminRollout(stack)).percent).toBe(11);
    } finally {
      await rm(join(stack.dir, '.bifrost/ramp.json'), { force: true });
    }
  });

  it('says in one line when the shim is not there', async () => {
    const r = await runBifrost(['simulate', '--clients', '2', '--shim', 'http://127.0.0.1:1', '--admin-url', 'http://127.0.0.1:1'], { cwd: stack.dir, env: stack.env });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('unreachable');
  });

  it('refuses bad options with exit 2', async () => {
    const r = await runBifrost(['simulate', '--ramp', '0,150'], { cwd: stack.dir, env: stack.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--ramp must be percentages 0..100');
  });
});
