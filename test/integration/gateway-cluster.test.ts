/**
 * Several real `bifrost gateway` processes sharing one Redis: cross-node
 * fan-out, exact recovery on another node, ordering under concurrent
 * publishers, and a new epoch after Redis lost the streams.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareOffsets } from '../../gateway/broker.ts';
import { NativeClient } from '../support/native-client.ts';
import { privateCall, spawnGateway, token, type GatewayProcess } from '../support/gateway.ts';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../support/redis.ts';

let a: GatewayProcess;
let b: GatewayProcess;
const prefix = uniquePrefix('cluster');
const clients: NativeClient[] = [];

async function connect(node: GatewayProcess, user: string): Promise<NativeClient> {
  const c = await NativeClient.connect(node.publicUrl, await token(user, 'cluster-team'));
  clients.push(c);
  return c;
}

async function publish(node: GatewayProcess, topic: string, data: unknown): Promise<{ offset: string; epoch: string }> {
  const r = await privateCall(node.privateUrl, 'POST', '/v1/publish', { topic, event: 'e', data });
  if (r.status !== 200) throw new Error(`publish failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

beforeAll(async () => {
  const env = { REDIS_URL: testRedisUrl(), BIFROST_REDIS_PREFIX: prefix };
  [a, b] = await Promise.all([spawnGateway(env, ['--node-id', 'node-a']), spawnGateway(env, ['--node-id', 'node-b'])]);
});
afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await deletePrefix(testRedisUrl(), prefix);
});

describe('two gateway processes on one Redis', () => {
  it('delivers a publish through node A to subscribers on node B, once each', async () => {
    const onB = await connect(b, 'x1');
    const onB2 = await connect(b, 'x1');
    const onA = await connect(a, 'x1');
    for (const c of [onB, onB2, onA]) expect(await c.call({ op: 'subscribe', topic: 'user:x1' })).toMatchObject({ op: 'ok' });
    const pos = await publish(a, 'user:x1', { hello: 'B' });
    for (const c of [onB, onB2, onA]) {
      const ev = await c.waitFor((f) => f.op === 'event');
      expect(ev).toMatchObject({ topic: 'user:x1', offset: pos.offset, data: { hello: 'B' } });
    }
    await publish(b, 'user:x1', { marker: true });
    for (const c of [onB, onB2, onA]) await c.waitFor((f) => f.op === 'event' && (f.data as { marker?: boolean }).marker === true);
    for (const c of [onB, onB2, onA]) expect(c.events).toHaveLength(2);
  });

  it('lists both nodes in the registry', async () => {
    const r = await privateCall(a.privateUrl, 'GET', '/v1/nodes');
    expect(r.body.nodes.map((n: { id: string }) => n.id).sort()).toEqual(['node-a', 'node-b']);
    expect(r.body.nodes[0]).toMatchObject({ url: expect.stringMatching(/^http:/), loadFactor: expect.any(Number), draining: false });
  });

  it('recovers exactly the 200 missed events on the other node, then continues live', async () => {
    const first = await connect(a, 'r1');
    const ok = await first.call({ op: 'subscribe', topic: 'user:r1' });
    await publish(b, 'user:r1', { n: 0 });
    const seen = await first.waitFor((f) => f.op === 'event');
    first.close();
    for (let i = 1; i <= 200; i++) await publish(i % 2 ? a : b, 'user:r1', { n: i });
    const again = await connect(b, 'r1');
    const since = { offset: seen.offset as string, epoch: (ok.position as { epoch: string }).epoch };
    const ok2 = await again.call({ op: 'subscribe', topic: 'user:r1', since });
    expect(ok2).toMatchObject({ op: 'ok', recovered: true });
    await again.waitEvents(200);
    expect(again.events.map((e) => (e.data as { n: number }).n)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    await publish(a, 'user:r1', { n: 201 });
    await again.waitEvents(201);
    expect(again.events.map((e) => (e.data as { n: number }).n).slice(-2)).toEqual([200, 201]);
    const offsets = again.events.map((e) => e.offset as string);
    for (let i = 1; i < offsets.length; i++) expect(compareOffsets(offsets[i]!, offsets[i - 1]!)).toBe(1);
  });

  it('neither loses nor doubles events published while the replay runs (the seam)', async () => {
    const first = await connect(a, 's1');
    await first.call({ op: 'subscribe', topic: 'user:s1' });
    await publish(a, 'user:s1', { n: 0 });
    const seen = await first.waitFor((f) => f.op === 'event');
    const epoch = (await privateCall(a.privateUrl, 'GET', '/v1/topics/user:s1/history?limit=1')).body.position.epoch;
    first.close();
    for (let i = 1; i <= 300; i++) await publish(b, 'user:s1', { n: i });
    // Keep publishing while the client reconnects and replays.
    let n = 300;
    let stop = false;
    const publisher = (async () => {
      while (!stop) await publish(n % 2 ? a : b, 'user:s1', { n: ++n });
    })();
    await new Promise((r) => setTimeout(r, 50));
    const again = await connect(b, 's1');
    const ok = await again.call({ op: 'subscribe', topic: 'user:s1', since: { offset: seen.offset, epoch } });
    expect(ok).toMatchObject({ recovered: true });
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await publisher;
    await again.waitEvents(n);
    await new Promise((r) => setTimeout(r, 100));
    expect(again.events.map((e) => (e.data as { n: number }).n)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  });

  it('tells a client recovered:false with a new epoch after Redis lost the stream', async () => {
    const c = await connect(a, 'f1');
    const ok = await c.call({ op: 'subscribe', topic: 'user:f1' });
    await publish(a, 'user:f1', { n: 1 });
    const ev = await c.waitFor((f) => f.op === 'event');
    c.close();
    await deletePrefix(testRedisUrl(), prefix + 's:');
    await deletePrefix(testRedisUrl(), prefix + 'e:');
    const c2 = await connect(b, 'f1');
    const epoch = (ok.position as { epoch: string }).epoch;
    const r = await c2.call({ op: 'subscribe', topic: 'user:f1', since: { offset: ev.offset, epoch } });
    expect(r).toMatchObject({ op: 'ok', recovered: false });
    expect((r.position as { epoch: string }).epoch).not.toBe(epoch);
  });

  it('delivers 10,000 events from 4 concurrent publishers in offset order to every subscriber', async () => {
    const subs = [await connect(a, 'o1'), await connect(b, 'o1'), await connect(b, 'o1')];
    for (const s of subs) await s.call({ op: 'subscribe', topic: 'user:o1' });
    const perCaller = 2500;
    await Promise.all(
      [a, b, a, b].map(async (node, caller) => {
        for (let i = 0; i < perCaller; i++) await publish(node, 'user:o1', { caller, i });
      }),
    );
    for (const s of subs) {
      await s.waitEvents(4 * perCaller, 60_000);
      expect(s.events).toHaveLength(4 * perCaller);
      const offsets = s.events.map((e) => e.offset as string);
      for (let i = 1; i < offsets.length; i++) {
        if (compareOffsets(offsets[i]!, offsets[i - 1]!) !== 1) throw new Error(`out of order at ${i}: ${offsets[i - 1]} then ${offsets[i]}`);
      }
      // Each caller's own events keep their order, and none is missing.
      for (let caller = 0; caller < 4; caller++) {
        const mine = s.events.map((e) => e.data as { caller: number; i: number }).filter((d) => d.caller === caller).map((d) => d.i);
        expect(mine).toEqual(Array.from({ length: perCaller }, (_, i) => i));
      }
    }
    expect(subs[0]!.events.map((e) => e.offset)).toEqual(subs[1]!.events.map((e) => e.offset));
  }, 120_000);
});
