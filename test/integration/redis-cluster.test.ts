/**
 * Redis Cluster: a local 3-master cluster made by the test. Two gateway nodes
 * on it deliver across nodes and recover exactly; each topic's stream, epoch
 * and sharded channel share one slot, and delivery uses sharded pub/sub
 * (SSUBSCRIBE), so a topic's traffic stays on its shard.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../gateway/gateway.ts';
import { NativeClient } from '../support/native-client.ts';
import { privateCall, startTestGateway, token } from '../support/gateway.ts';
import { startRedisCluster } from '../support/redis-server.ts';
import { expectNoGapAcrossCut } from '../support/gap-drill.ts';

let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
let a: RunningGateway;
let b: RunningGateway;
const clients: NativeClient[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  a = await startTestGateway({ redisClusterNodes: cluster.seeds, redisPrefix: 'cl:', nodeId: 'cluster-a' });
  b = await startTestGateway({ redisClusterNodes: cluster.seeds, redisPrefix: 'cl:', nodeId: 'cluster-b' });
}, 60_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await a?.close();
  await b?.close();
  await cluster?.stop();
});

const cli = (port: number, ...args: string[]) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();

describe('Redis Cluster broker', () => {
  it('fans out across nodes and recovers exactly, for topics spread over the shards', async () => {
    for (const team of ['alpha', 'bravo', 'charlie', 'delta', 'echo']) {
      const topic = `team:${team}`;
      const t = await token(`u-${team}`, team);
      const onB = await NativeClient.connect(b.publicUrl, t);
      clients.push(onB);
      const ok = await onB.call({ op: 'subscribe', topic });
      expect(ok).toMatchObject({ op: 'ok' });
      const first = await privateCall(a.privateUrl, 'POST', '/v1/publish', { topic, event: 'e', data: 0 });
      expect(first.status).toBe(200);
      await onB.waitEvents(1);
      for (let i = 1; i <= 20; i++) await privateCall(i % 2 ? a.privateUrl : b.privateUrl, 'POST', '/v1/publish', { topic, event: 'e', data: i });
      await onB.waitEvents(21);
      expect(onB.events.map((e) => e.data)).toEqual(Array.from({ length: 21 }, (_, i) => i));
      const late = await NativeClient.connect(a.publicUrl, t);
      clients.push(late);
      const r = await late.call({ op: 'subscribe', topic, since: { offset: first.body.offset, epoch: first.body.epoch } });
      expect(r).toMatchObject({ recovered: true });
      await late.waitEvents(20);
      expect(late.events.map((e) => e.data)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    }
  });

  it('keeps a topic on one shard and uses sharded pub/sub there', async () => {
    const topic = 'team:alpha';
    const slot = (k: string) => cli(cluster.nodes[0]!.port, 'cluster', 'keyslot', k);
    const streamSlot = slot(`cl:s:{${topic}}`);
    expect(slot(`cl:e:{${topic}}`)).toBe(streamSlot);
    expect(slot(`cl:c:{${topic}}`)).toBe(streamSlot);
    // The node that owns the slot holds the stream and lists the sharded channel.
    const owner = cluster.nodes.find((n) => cli(n.port, 'cluster', 'countkeysinslot', streamSlot) !== '0')!;
    expect(owner).toBeDefined();
    expect(cli(owner.port, 'exists', `cl:s:{${topic}}`)).toBe('1');
    expect(cli(owner.port, 'pubsub', 'shardchannels')).toContain(`cl:c:{${topic}}`);
    // Classic (cluster-wide) pub/sub carries no topic traffic.
    for (const n of cluster.nodes) expect(cli(n.port, 'pubsub', 'channels', 'cl:c:*')).toBe('');
  });

  it('replays, in order, what a node missed while its shard subscriber was reconnecting', async () => {
    const topic = 'team:foxtrot';
    const c = await NativeClient.connect(b.publicUrl, await token('u-gap', 'foxtrot'));
    clients.push(c);
    await c.call({ op: 'subscribe', topic });
    const pub = (n: number) => privateCall(a.privateUrl, 'POST', '/v1/publish', { topic, event: 'e', data: n });
    // Cut the sharded pub/sub connections on the topic's shard; node a keeps publishing meanwhile.
    await expectNoGapAcrossCut(c, pub, () => {
      const slot = cli(cluster.nodes[0]!.port, 'cluster', 'keyslot', `cl:s:{${topic}}`);
      const owner = cluster.nodes.find((n) => cli(n.port, 'cluster', 'countkeysinslot', slot) !== '0')!;
      cli(owner.port, 'client', 'kill', 'type', 'pubsub');
    });
  });
});
