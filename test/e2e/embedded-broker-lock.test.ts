/**
 * The embedded broker serves one process: a second `bifrost gateway` (or
 * `bifrost up`) on the same local stack is refused with one line naming the
 * first, a killed holder's claim is taken over, and a clean stop removes it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnGateway, type GatewayProcess } from '../support/gateway.ts';

const EMBEDDED = { REDIS_URL: '', REDIS_SENTINELS: '', REDIS_CLUSTER_NODES: '' };
const running: GatewayProcess[] = [];
const dir = mkdtempSync(path.join(tmpdir(), 'bifrost-embedded-'));
afterAll(async () => {
  for (const g of running) await g.stop('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('one gateway per embedded broker', () => {
  it('refuses a second gateway in the same state dir, takes over after a kill -9, and releases on a clean stop', async () => {
    const claimFile = path.join(dir, '.bifrost', 'embedded-broker.json');
    const first = await spawnGateway(EMBEDDED, ['--drain-window', '100ms'], dir);
    running.push(first);
    const holder = JSON.parse(readFileSync(claimFile, 'utf8'));
    expect(holder).toMatchObject({ pid: first.child.pid, command: 'bifrost gateway', publicUrl: first.publicUrl, privateUrl: first.privateUrl });

    // The second one exits 2 before listening, and says who holds the broker.
    const err = await spawnGateway(EMBEDDED, [], dir).then(
      (g) => {
        running.push(g);
        return undefined;
      },
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/gateway exited with 2/);
    expect(err?.message).toContain(`another gateway already runs on the embedded broker of ${path.join(dir, '.bifrost')}`);
    expect(err?.message).toContain(`pid ${first.child.pid} at ${first.publicUrl}`);
    expect(err?.message).toContain('REDIS_URL');
    // The first one still serves.
    expect((await fetch(first.publicUrl + '/healthz')).status).toBe(200);

    // kill -9 leaves the claim behind; its pid is dead, so the next gateway takes it over.
    await first.stop('SIGKILL');
    expect(existsSync(claimFile)).toBe(true);
    const second = await spawnGateway(EMBEDDED, ['--drain-window', '100ms'], dir);
    running.push(second);
    expect(JSON.parse(readFileSync(claimFile, 'utf8')).pid).toBe(second.child.pid);

    // A clean stop removes the claim.
    expect(await second.stop('SIGTERM')).toBe(0);
    expect(existsSync(claimFile)).toBe(false);
  }, 60_000);
});
