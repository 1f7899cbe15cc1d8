/**
 * A ramp against a shim whose Bifrost is down: the shim sends every socket the
 * flag routes to Bifrost to Sync instead (`bifrost_shim_fallbacks_total`), so
 * Bifrost sees no upgrade, no request and no failure, and its /metrics cannot
 * be read. The ramp must roll back — not finish green at 100 %.
 *
 * Real processes: `bifrost sync-reference`, `bifrost shim` pointed at a
 * Bifrost URL nobody listens on, unchanged socket.io clients through the shim,
 * and `bifrost rollout ramp`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_TOKEN_SECRET, signAccessToken } from '../../gateway/token.ts';
import { connectSocketIo4Client } from '../support/legacy-clients.ts';
import { freePort } from '../support/redis-server.ts';
import { cleanEnv, json, killAll, readyJson, runBifrost, spawnBifrost, type Running } from '../support/cli-stack.ts';

let dir: string;
let sync: Running;
let shim: Running;
let syncUrl: string;
let shimInfo: { url: string; adminUrl: string };
let env: NodeJS.ProcessEnv;

async function stop(r: Running | undefined): Promise<void> {
  if (!r || r.child.exitCode !== null || r.child.signalCode !== null) return;
  r.child.kill('SIGTERM');
  const t = setTimeout(() => r.child.kill('SIGKILL'), 10_000);
  await r.exited;
  clearTimeout(t);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-rollout-down-'));
  env = cleanEnv({ BIFROST_FLAGS_FILE: join(dir, 'flags.json') });
  sync = spawnBifrost(['sync-reference', '--port', '0', '--json'], { cwd: dir, env, longLived: true });
  syncUrl = (await readyJson<{ url: string }>(sync, 'sync-reference --json')).url;
  const deadBifrost = `http://127.0.0.1:${await freePort()}`; // nobody listens: Bifrost is down
  shim = spawnBifrost(['shim', '--godserver', syncUrl, '--sync', syncUrl, '--bifrost', deadBifrost, '--port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--json'], { cwd: dir, env, longLived: true });
  shimInfo = await readyJson<{ url: string; adminUrl: string }>(shim, 'shim --json');
}, 180_000);

afterAll(async () => {
  await killAll();
  await stop(shim);
  await stop(sync);
  await rm(dir, { recursive: true, force: true });
});

/** Unchanged clients starting up through the shim, one after another, until stopped. */
function startClients(): () => Promise<number> {
  let stopped = false;
  let connected = 0;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      try {
        const token = await signAccessToken(DEV_TOKEN_SECRET, { userId: `u-down-${i}`, teamId: 't-down' });
        const init = await fetch(`${shimInfo.url}/godserver/init`, { headers: { 'x-access-token': token } });
        const { syncserver_url } = (await init.json()) as { syncserver_url: string };
        const client = await connectSocketIo4Client({ url: syncserver_url, token, connectTimeoutMs: 3000 });
        connected += 1;
        await client.close();
      } catch {
        // a client that could not connect is what the guards are for; keep going
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return connected;
  };
}

describe('bifrost rollout ramp when Bifrost is down', () => {
  it('rolls back on the shim falling back to Sync, instead of finishing green', async () => {
    const stopClients = startClients();
    try {
      const r = await runBifrost(['rollout', 'ramp', '--steps', '50,100', '--interval', '4s', '--min-requests', '3', '--json', '--admin-url', shimInfo.adminUrl], { cwd: dir, env, timeoutMs: 180_000 });
      expect(r.code, r.stderr).toBe(1);
      const out = json<{ outcome: string; rolledBackTo: number; applied: number[]; breaches: { guard: string; text: string }[] }>(r);
      expect(out.outcome).toBe('rolled-back');
      expect(out.rolledBackTo).toBe(0);
      expect(out.applied).toEqual([50]);
      const fallback = out.breaches.find((b) => b.guard === 'bifrost-fallbacks');
      expect(fallback, JSON.stringify(out.breaches)).toBeDefined();
      // Every Bifrost decision falls back: once there are --min-requests (3) fallbacks the rate (over Godserver and
      // socket decisions, so about 50% in proxied mode, each client being decided twice) is far over 1%.
      expect(fallback!.text).toMatch(/^\d+ of \d+ Bifrost routing decisions \(Godserver and socket\) fell back to Sync or 503 because no Bifrost node was usable \(no_eligible_node ×\d+/);
    } finally {
      expect(await stopClients()).toBeGreaterThan(0);
    }
    const applied = (await (await fetch(`${shimInfo.adminUrl}/api/rollout`)).json()) as { percent: number };
    expect(applied.percent).toBe(0);
  }, 300_000);

  it('does not pass a step whose gateway metrics could not be read, even without traffic', async () => {
    const r = await runBifrost(['rollout', 'ramp', '--steps', '10', '--interval', '2s', '--json', '--admin-url', shimInfo.adminUrl], { cwd: dir, env, timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(1);
    const out = json<{ outcome: string; breaches: { guard: string; text: string }[] }>(r);
    expect(out.outcome).toBe('rolled-back');
    expect(out.breaches.map((b) => b.guard)).toEqual(['gateway-metrics-unavailable']);
    expect(out.breaches[0]!.text).toMatch(/^no Bifrost gateway's \/metrics could be read during the step \(http:\/\/127\.0\.0\.1:\d+: .*\): request errors and p99 were not judged/);
  }, 300_000);
});
