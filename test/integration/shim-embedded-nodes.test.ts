/**
 * Nodes that cannot share topics: a gateway on the embedded broker serves only
 * its own users. When the shim spreads users over several nodes and one runs
 * the embedded broker, the shim logs an error naming it and its admin API
 * marks it (`sharesTopics: false`); nodes on one Redis are fine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../gateway/gateway.ts';
import type { ShimHandle } from '../../proxy/shim.ts';
import { startTestGateway } from '../support/gateway.ts';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../support/redis.ts';
import { startTestShim } from '../support/test-shim.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bifrost-embedded-nodes-'));
const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

interface NodeView {
  id: string;
  broker: string | null;
  sharesTopics: boolean;
  reachable: boolean | null;
}

function capturingLogger(): { log: pino.Logger; lines: { level: number; msg: string; nodes?: string[] }[] } {
  const lines: { level: number; msg: string; nodes?: string[] }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

async function shimOver(gateways: RunningGateway[], log: pino.Logger): Promise<ShimHandle> {
  const setup = { dir, syncUrl: gateways[0]!.publicUrl, bifrostUrls: gateways.map((g) => g.publicUrl), tokenSecret: 's', adminToken: 'a' };
  const { shim } = await startTestShim(setup, { percent: 100 }, { log, loadPollIntervalMs: 200 });
  closers.push(() => shim.close());
  return shim;
}

async function nodesOf(shim: ShimHandle): Promise<NodeView[]> {
  const doc = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as { connections: { nodes: NodeView[] } };
  return doc.connections.nodes;
}

/** [id, broker, sharesTopics] per node, once every node has reported its broker. */
async function brokersOf(shim: ShimHandle): Promise<[string, string | null, boolean][]> {
  const nodes = await until(() => nodesOf(shim), (n) => n.every((x) => x.broker !== null));
  return nodes.map((n) => [n.id, n.broker, n.sharesTopics]);
}

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('shim over nodes that cannot share topics', () => {
  it('names the embedded-broker nodes among several, and clears the error when only one is left', async () => {
    const a = await startTestGateway({ nodeId: 'solo-a' });
    const b = await startTestGateway({ nodeId: 'solo-b' });
    closers.push(() => a.close());
    let bOpen = true;
    closers.push(async () => bOpen && b.close());
    const { log, lines } = capturingLogger();
    const shim = await shimOver([a, b], log);

    expect(await brokersOf(shim)).toEqual([
      ['solo-a', 'memory', false],
      ['solo-b', 'memory', false],
    ]);
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toContain('solo-a, solo-b run the embedded in-process broker');
    expect(errors[0]!.msg).toContain('REDIS_URL');

    // One node left: nothing is split any more.
    await b.close();
    bOpen = false;
    const after = await until(() => nodesOf(shim), (n) => n.find((x) => x.id === 'solo-a')?.sharesTopics === true);
    expect(after.find((x) => x.id === 'solo-a')).toMatchObject({ broker: 'memory', sharesTopics: true });
    expect(lines.some((l) => l.level === 30 && l.msg.includes('can share topics again'))).toBe(true);
    expect(lines.filter((l) => l.level === 50)).toHaveLength(1);
  }, 30_000);

  it('reports nodes on one Redis as sharing topics, without an error', async () => {
    const prefix = uniquePrefix('embedded-nodes');
    closers.push(() => deletePrefix(testRedisUrl(), prefix));
    const a = await startTestGateway({ nodeId: 'shared-a', redisUrl: testRedisUrl(), redisPrefix: prefix });
    closers.push(() => a.close());
    const b = await startTestGateway({ nodeId: 'shared-b', redisUrl: testRedisUrl(), redisPrefix: prefix });
    closers.push(() => b.close());
    const { log, lines } = capturingLogger();
    const shim = await shimOver([a, b], log);
    expect(await brokersOf(shim)).toEqual([
      ['shared-a', 'redis', true],
      ['shared-b', 'redis', true],
    ]);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  }, 30_000);
});
