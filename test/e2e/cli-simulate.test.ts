/**
 * `bifrost simulate` against `bifrost up`: real sails.io.js clients through
 * the shim while the flag is ramped 0 → 50 → 100; every one ends on Bifrost,
 * and nothing a steady subscriber should have received is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, killAll, runBifrost, startStack, type Stack } from '../support/cli-stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('simulate');
}, 120_000);
afterAll(async () => {
  await killAll();
  await stack?.stop();
});

describe('bifrost simulate', () => {
  it('ramps 0 → 50 → 100 with real legacy clients and loses nothing', async () => {
    const r = await runBifrost(
      ['simulate', '--json', '--clients', '24', '--ramp', '0,50,100', '--every', '4s', '--collections', '4', '--updates-per-sec', '5', '--shim', stack.info.shimUrl, '--admin-url', stack.info.adminUrl],
      { cwd: stack.dir, env: stack.env },
    );
    const out = json<{ ok: boolean; clients: number; onBackend: { sync: number; bifrost: number }; missed: number; expected: number; delivered: number; updates: number; reconnects: number; failedRequests: number }>(r);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    expect(out.ok).toBe(true);
    expect(out.onBackend).toEqual({ sync: 0, bifrost: 24 });
    expect(out.missed).toBe(0);
    expect(out.failedRequests).toBe(0);
    expect(out.updates).toBeGreaterThan(5);
    expect(out.expected).toBeGreaterThan(0);
    // Each client moved at most once per step that changed its backend.
    expect(out.reconnects).toBeGreaterThanOrEqual(24);
    expect(out.reconnects).toBeLessThanOrEqual(48);
  }, 120_000);

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
