/**
 * Failure drills with real gateway processes on one Redis and 600 native
 * clients behaving as a good Bifrost client does (reconnect + `since`):
 * - kill -9 of one of three nodes under continuous publishing;
 * - a rolling restart of all three nodes (SIGTERM drain, start, next);
 * - Redis restarted without persistence.
 * Every client must end with every event exactly once, in order; the
 * rolling restart must not produce a reconnect storm.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { privateCall, spawnGateway, token, type GatewayProcess } from '../support/gateway.ts';
import { startRedisServer, type RedisProcess } from '../support/redis-server.ts';
import { ResilientClient, compareWithHistory, type NodeRef } from '../support/resilient-client.ts';
import { NativeClient } from '../support/native-client.ts';

const TOPICS = 10;
const CLIENTS = 600;

interface Cluster {
  redis: RedisProcess;
  nodes: (GatewayProcess | undefined)[];
  ports: { port: number; privatePort: number }[];
  clients: ResilientClient[];
  stopPublishing?: () => Promise<number>;
}
let cluster: Cluster | undefined;

afterEach(async () => {
  if (!cluster) return;
  await cluster.stopPublishing?.().catch(() => 0);
  for (const c of cluster.clients) c.stop();
  await Promise.all(cluster.nodes.map((n) => n?.stop('SIGKILL')));
  await cluster.redis.stop();
  cluster = undefined;
});

/**
 * Starts three nodes into a cluster the afterEach hook already knows, so a
 * node that fails to start does not leave the others (and Redis) running.
 */
async function startCluster(): Promise<Cluster> {
  const redis = await startRedisServer();
  cluster = { redis, nodes: [], ports: [], clients: [] };
  const started = await Promise.allSettled([0, 1, 2].map((i) => startNode(redis, i)));
  cluster.nodes = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return cluster;
}

async function startNode(redis: RedisProcess, i: number, ports?: { port: number; privatePort: number }, drainWindow = '4s'): Promise<GatewayProcess> {
  const args = ['--node-id', `drill-${i}`, '--drain-window', drainWindow];
  if (ports) args.push('--port', String(ports.port), '--private-port', String(ports.privatePort));
  return spawnGateway({ REDIS_URL: redis.url, BIFROST_REDIS_PREFIX: 'drill:' }, args);
}

function live(c: Cluster): GatewayProcess[] {
  return c.nodes.filter((n): n is GatewayProcess => !!n && n.child.exitCode === null && !n.child.signalCode);
}

/** Live, non-draining nodes from the registry, newest first. */
async function registry(c: Cluster): Promise<{ id: string; url: string; draining: boolean; startedAt: string }[]> {
  for (const n of live(c)) {
    const r = await privateCall(n.privateUrl, 'GET', '/v1/nodes').catch(() => undefined);
    if (r?.status === 200) return (r.body.nodes as { id: string; url: string; draining: boolean; startedAt: string }[]).filter((x) => !x.draining);
  }
  throw new Error('no node answers');
}

function startPublisher(c: Cluster): () => Promise<number> {
  let stop = false;
  let n = 0;
  const loop = (async () => {
    while (!stop) {
      const nodes = live(c);
      const node = nodes[n % nodes.length];
      if (!node) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const topic = `team:d${n % TOPICS}`;
      await privateCall(node.privateUrl, 'POST', '/v1/publish', { topic, event: 'tick', data: { n } }).catch(() => undefined);
      n++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return n;
  };
}

async function verify(c: Cluster): Promise<void> {
  const node = live(c)[0]!;
  const history = new Map<string, string[]>();
  for (let t = 0; t < TOPICS; t++) {
    const r = await privateCall(node.privateUrl, 'GET', `/v1/topics/team:d${t}/history?limit=10000`);
    history.set(`team:d${t}`, (r.body.events as { offset: string }[]).map((e) => e.offset));
  }
  // Wait until every client has caught up with the end of its topic.
  const deadline = Date.now() + 30_000;
  for (const [i, cl] of c.clients.entries()) {
    const expected = history.get(`team:d${i % TOPICS}`)!;
    while (cl.received.at(-1)?.offset !== expected.at(-1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }
  let missing = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  for (const [i, cl] of c.clients.entries()) {
    const all = history.get(`team:d${i % TOPICS}`)!;
    const first = cl.received[0]?.offset;
    expect(first, `client ${i} received nothing`).toBeDefined();
    const expected = all.slice(all.indexOf(first!));
    const r = compareWithHistory(cl.received, expected);
    missing += r.missing;
    duplicates += r.duplicates;
    outOfOrder += r.outOfOrder;
  }
  console.log(`drill: ${c.clients.length} clients, missing ${missing}, duplicates ${duplicates}, out of order ${outOfOrder}`);
  expect({ missing, duplicates, outOfOrder }).toEqual({ missing: 0, duplicates: 0, outOfOrder: 0 });
}

async function connectClients(c: Cluster, pick: (i: number) => () => Promise<NodeRef>): Promise<void> {
  for (let i = 0; i < CLIENTS; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, CLIENTS - i) }, async (_, k) => {
        const idx = i + k;
        const cl = new ResilientClient(`team:d${idx % TOPICS}`, await token(`drill-u${idx}`, `d${idx % TOPICS}`), pick(idx));
        c.clients[idx] = cl;
        await cl.start();
      }),
    );
  }
}

/** Client i starts on the given node, then reconnects wherever `next` says. */
function firstThen(start: GatewayProcess, next: () => Promise<NodeRef>): () => Promise<NodeRef> {
  let first = true;
  return async () => {
    if (!first) return next();
    first = false;
    return { id: start.nodeId, url: start.publicUrl };
  };
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('failure drills', () => {
  it('kill -9 of one of three nodes: every client recovers every event exactly once, in order', async () => {
    const c = await startCluster();
    const nodes = [...(c.nodes as GatewayProcess[])];
    const randomLive = async (): Promise<NodeRef> => {
      const reg = await registry(c);
      const n = reg[Math.floor(Math.random() * reg.length)]!;
      return { id: n.id, url: n.url };
    };
    await connectClients(c, (i) => firstThen(nodes[i % 3]!, randomLive));
    c.stopPublishing = startPublisher(c);
    await new Promise((r) => setTimeout(r, 1500));
    await nodes[2]!.stop('SIGKILL');
    c.nodes[2] = undefined;
    const onKilled = c.clients.filter((_, i) => i % 3 === 2);
    await until(() => onKilled.every((cl) => cl.reconnects >= 1), 30_000, 'clients of the killed node reconnected');
    await new Promise((r) => setTimeout(r, 1500));
    const published = await c.stopPublishing();
    c.stopPublishing = undefined;
    console.log(`kill -9 drill: ${published} publishes, ${onKilled.length} clients moved`);
    await verify(c);
    expect(c.clients.filter((cl) => cl.recoveredFalse > 0)).toHaveLength(0);
  }, 180_000);

  it('rolling restart of three nodes: nothing lost or doubled, at most two reconnects each, no storm', async () => {
    const c = await startCluster();
    const redis = c.redis;
    const nodes = c.nodes as GatewayProcess[];
    const ports = nodes.map((n) => ({ port: Number(new URL(n.publicUrl).port), privatePort: Number(new URL(n.privateUrl).port) }));
    c.ports = ports;
    const newest = async (): Promise<NodeRef> => {
      const reg = await registry(c);
      reg.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
      return { id: reg[0]!.id, url: reg[0]!.url };
    };
    await connectClients(c, (i) => firstThen(nodes[i % 3]!, newest));
    c.stopPublishing = startPublisher(c);

    // Measure the reconnect rate at the gateways: opened connections per second, summed over nodes.
    const opened = new Map<string, number>();
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      let last = Date.now();
      while (sampling) {
        const started = Date.now();
        let delta = 0;
        for (const n of live(c)) {
          const text = await fetch(n.publicUrl + '/metrics').then((r) => r.text()).catch(() => '');
          const m = /bifrost_connections_opened_total\{[^}]*protocol="native"[^}]*\} (\d+)/.exec(text);
          if (!m) continue;
          const key = `${n.nodeId}:${n.child.pid}`;
          const v = Number(m[1]);
          delta += v - (opened.get(key) ?? v);
          opened.set(key, v);
        }
        const now = Date.now();
        peak = Math.max(peak, delta / ((now - last) / 1000));
        last = now;
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
      }
    })();
    await new Promise((r) => setTimeout(r, 1200));

    // The drain-window budget: the clients a node holds, spread over 90% of its 4 s window.
    let budget = 0;
    for (let i = 0; i < 3; i++) {
      const held = (await registry(c)).find((n) => n.id === `drill-${i}`) as { connections?: number } | undefined;
      budget = Math.max(budget, (held?.connections ?? 0) / 3.6);
      const code = await c.nodes[i]!.stop('SIGTERM');
      expect(code).toBe(0);
      c.nodes[i] = await startNode(redis, i, ports[i], '4s');
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, 1500));
    sampling = false;
    await sampler;
    const published = await c.stopPublishing();
    c.stopPublishing = undefined;
    const maxReconnects = Math.max(...c.clients.map((cl) => cl.reconnects));
    console.log(
      `rolling restart: ${published} publishes, peak reconnect rate at the gateways ${peak.toFixed(0)}/s (drain-window budget ${budget.toFixed(0)}/s), max reconnects per client ${maxReconnects}`,
    );
    await verify(c);
    expect(maxReconnects).toBeLessThanOrEqual(2);
    // Sampling once a second over a random spread: allow twice the average budget (on a loaded 2-core machine the
    // drain's timers fire late and in bunches: 185/s against a 111/s budget was seen), never a storm — a node's
    // clients all reconnecting at once would be ~3.6× the budget.
    expect(peak).toBeLessThanOrEqual(budget * 2 + 10);
    expect(peak).toBeLessThan(CLIENTS / 2);
    expect(c.clients.every((cl) => cl.reconnects >= 1)).toBe(true);
  }, 240_000);

  it('Redis restarted without persistence: resubscribing clients are told recovered:false', async () => {
    const redis = await startRedisServer();
    const node = await startNode(redis, 0);
    cluster = { redis, nodes: [node], ports: [], clients: [] };
    const t = await token('rr', 'rr-team');
    const a = await NativeClient.connect(node.publicUrl, t);
    const ok = await a.call({ op: 'subscribe', topic: 'team:rr-team' });
    await privateCall(node.privateUrl, 'POST', '/v1/publish', { topic: 'team:rr-team', event: 'e', data: 1 });
    const ev = await a.waitFor((f) => f.op === 'event');
    a.close();
    const port = redis.port;
    await redis.stop();
    cluster.redis = await startRedisServer([], port);
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await privateCall(node.privateUrl, 'POST', '/v1/publish', { topic: 'team:rr-team', event: 'e', data: 2 })).status;
    }
    expect(status).toBe(200);
    const b = await NativeClient.connect(node.publicUrl, t);
    const r = await b.call({ op: 'subscribe', topic: 'team:rr-team', since: { offset: ev.offset, epoch: (ok.position as { epoch: string }).epoch } });
    expect(r).toMatchObject({ op: 'ok', recovered: false });
    b.close();
  }, 60_000);
});
