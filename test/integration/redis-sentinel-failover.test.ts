/**
 * Redis Sentinel failover: a master, two replicas and three sentinels started by
 * the test; two gateway processes on Sentinel; subscribers on both; the
 * master is killed while a caller keeps publishing. Publishes either succeed
 * or fail with 503 (the caller retries with the same idempotency key), never
 * silently; the gateways follow the promoted replica by themselves and every
 * acknowledged event reaches every subscriber, in order.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { NativeClient } from '../support/native-client.ts';
import { privateCall, spawnGateway, token, type GatewayProcess } from '../support/gateway.ts';
import { startRedisServer, startSentinel, type RedisProcess } from '../support/redis-server.ts';

const procs: RedisProcess[] = [];
const gateways: GatewayProcess[] = [];
const clients: NativeClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(gateways.map((g) => g.stop()));
  await Promise.all(procs.map((p) => p.stop()));
});

describe('Redis Sentinel failover', () => {
  it('keeps every acknowledged publish when the master dies', async () => {
    const master = await startRedisServer();
    // Two replicas: after the failover one is left to confirm writes (minReplicas 1 with Sentinel).
    const replicas = await Promise.all([0, 1].map(() => startRedisServer(['--replicaof', '127.0.0.1', String(master.port)])));
    procs.push(master, ...replicas);
    for (const replica of replicas) {
      const probe = new Redis(replica.url);
      for (let i = 0; i < 100; i++) {
        if ((await probe.info('replication')).includes('master_link_status:up')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      probe.disconnect();
    }
    const sentinels = await Promise.all([0, 1, 2].map(() => startSentinel(master.port)));
    procs.push(...sentinels);
    const env = { REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','), REDIS_SENTINEL_NAME: 'mymaster', REDIS_URL: '' };
    gateways.push(await spawnGateway(env, ['--node-id', 'sa']), await spawnGateway(env, ['--node-id', 'sb']));
    const t = await token('fo', 't');
    for (const g of gateways) for (let i = 0; i < 3; i++) clients.push(await NativeClient.connect(g.publicUrl, t));
    for (const c of clients) expect(await c.call({ op: 'subscribe', topic: 'user:fo' })).toMatchObject({ op: 'ok' });

    let failures = 0;
    const acked: number[] = [];
    const publishUntilAcked = async (n: number) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const g = gateways[n % 2]!;
        const r = await privateCall(g.privateUrl, 'POST', '/v1/publish', { topic: 'user:fo', event: 'e', data: n, idempotencyKey: `n-${n}` }).catch(() => ({ status: 0, body: null }));
        if (r.status === 200) return acked.push(n);
        expect([503, 0]).toContain(r.status);
        failures++;
        if (Date.now() > deadline) throw new Error(`publish ${n} not accepted within 30 s`);
        await new Promise((res) => setTimeout(res, 100));
      }
    };
    for (let n = 0; n < 30; n++) await publishUntilAcked(n);
    await master.stop();
    for (let n = 30; n < 80; n++) await publishUntilAcked(n);
    console.log(`sentinel failover: ${failures} publish attempts refused with 503 during the failover, all retried`);
    expect(acked).toEqual(Array.from({ length: 80 }, (_, i) => i));
    for (const c of clients) {
      await c.waitEvents(80, 30_000).catch(() => undefined);
      const got = c.events.map((e) => e.data as number);
      const firstSeen = got.filter((n, i) => got.indexOf(n) === i);
      expect(firstSeen).toEqual(acked);
      // At most the one event in flight at the moment of the crash may arrive twice.
      expect(got.length - firstSeen.length).toBeLessThanOrEqual(1);
    }
  }, 120_000);
});
