/**
 * The node-to-node control channel takes anything anyone PUBLISHes on it:
 * messages that are not a control message (null, numbers, arrays, wrong
 * field types) are logged and ignored, a handler that throws does not keep
 * the message from the other handlers, and the node goes on serving.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisBroker } from '../../gateway/broker-redis.ts';
import type { ControlMessage } from '../../gateway/broker.ts';
import { NativeClient } from '../support/native-client.ts';
import { startTestGateway, token } from '../support/gateway.ts';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../support/redis.ts';

const prefix = uniquePrefix('control');
afterAll(() => deletePrefix(testRedisUrl(), prefix));

const MALFORMED = [
  'null',
  '42',
  '"disconnect"',
  '[{"type":"disconnect"}]',
  '{}',
  '{"type":7}',
  '{"type":"no-such-type"}',
  '{"type":"subscribe","userId":"c1","topics":"user:c1"}',
  '{"type":"disconnect","userId":{"$ne":null}}',
  'not json',
];

describe('control channel', () => {
  it('ignores malformed control messages, isolates failing handlers and keeps the node serving', async () => {
    const warnings: string[] = [];
    const broker = new RedisBroker({ url: testRedisUrl(), prefix, onWarning: (msg) => warnings.push(msg) });
    const gw = await startTestGateway({ redisUrl: testRedisUrl(), redisPrefix: prefix });
    const raw = new Redis(testRedisUrl());
    try {
      await broker.ready();
      const seen: ControlMessage[] = [];
      broker.onControl(() => {
        throw new Error('handler bug');
      });
      broker.onControl((m) => seen.push(m));
      const c = await NativeClient.connect(gw.publicUrl, await token('c1', 'tc'));
      for (const m of MALFORMED) await raw.publish(`${prefix}control`, m);
      await raw.publish(`${prefix}control`, JSON.stringify({ type: 'services-changed' }));
      await expect.poll(() => seen.length, { timeout: 5000 }).toBe(1);
      expect(seen).toEqual([{ type: 'services-changed' }]);
      expect(warnings.filter((w) => w.includes('malformed control message'))).toHaveLength(MALFORMED.length);
      expect(warnings.some((w) => w.includes('control message handler failed'))).toBe(true);
      // The gateway on the same channel is alive and its socket untouched.
      expect(await c.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
      expect(c.closeCode).toBeUndefined();
      c.close();
    } finally {
      raw.disconnect();
      await gw.close();
      await broker.close();
    }
  });
});
