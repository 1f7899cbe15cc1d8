/**
 * Redis going away: publishes fail with 503 (never a silent drop), the
 * gateway keeps serving its sockets, and once Redis is back the node
 * re-subscribes by itself and live delivery resumes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../gateway/gateway.ts';
import { expectNoGapAcrossCut } from '../support/gap-drill.ts';
import { NativeClient } from '../support/native-client.ts';
import { privateCall, startTestGateway, token } from '../support/gateway.ts';
import { startRedisServer, type RedisProcess } from '../support/redis-server.ts';
import { Redis } from 'ioredis';

let redis: RedisProcess | undefined;
let gw: RunningGateway | undefined;
afterAll(async () => {
  await gw?.close();
  await redis?.stop();
});

describe('Redis outage', () => {
  it('answers publishes with 503 while Redis is down and recovers when it is back', async () => {
    redis = await startRedisServer();
    const port = redis.port;
    gw = await startTestGateway({ redisUrl: redis.url, redisPrefix: 'outage:' });
    const c = await NativeClient.connect(gw.publicUrl, await token('o1', 't'));
    await c.call({ op: 'subscribe', topic: 'user:o1' });
    expect((await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:o1', event: 'e', data: 1 })).status).toBe(200);
    await c.waitEvents(1);

    await redis.stop();
    const during = await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:o1', event: 'e', data: 2 });
    expect(during.status).toBe(503);
    expect(during.body.error.code).toBe('unavailable');
    expect(await c.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
    const ready = await fetch(gw.publicUrl + '/readyz');
    expect(ready.status).toBe(503);

    redis = await startRedisServer([], port);
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:o1', event: 'e', data: 3 })).status;
    }
    expect(status).toBe(200);
    const ev = await c.waitFor((f) => f.op === 'event' && f.data === 3, 10_000, 'event after Redis came back');
    expect(ev.topic).toBe('user:o1');
    // The event published while Redis was down was refused, so it never arrives.
    expect(c.events.map((e) => e.data)).not.toContain(2);
  }, 60_000);
});

describe('subscriber connection lost', () => {
  it('delivers, in order, the events published while the node was re-subscribing', async () => {
    const own = await startRedisServer();
    const node = await startTestGateway({ redisUrl: own.url, redisPrefix: 'gap:' });
    const admin = new Redis(own.url);
    try {
      const c = await NativeClient.connect(node.publicUrl, await token('g1', 't'));
      await c.call({ op: 'subscribe', topic: 'user:g1' });
      const pub = (n: number) => privateCall(node.privateUrl, 'POST', '/v1/publish', { topic: 'user:g1', event: 'e', data: n });
      // Cut the node's pub/sub connection; its command connection keeps publishing.
      await expectNoGapAcrossCut(c, pub, () => admin.client('KILL', 'TYPE', 'pubsub'));
      c.close();
    } finally {
      admin.disconnect();
      await node.close();
      await own.stop();
    }
  }, 60_000);
});
