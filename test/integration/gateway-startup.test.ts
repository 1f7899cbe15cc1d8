/**
 * A gateway node that cannot start says why without leaking secrets, and
 * leaves nothing behind: no listener, no Redis connection.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startTestGateway } from '../support/gateway.ts';
import { freePort, startRedisServer } from '../support/redis-server.ts';

describe('gateway start-up failures', () => {
  it('does not print the Redis password when the broker is unreachable', async () => {
    const port = await freePort(); // nothing listens there
    const err = await startTestGateway({ redisUrl: `redis://bifrost:s3cret-pw@127.0.0.1:${port}/0` }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain('cannot reach the broker');
    expect(err!.message).toContain(`127.0.0.1:${port}`);
    expect(err!.message).not.toContain('s3cret-pw');
  }, 30_000);

  it('closes its Redis connections and listener when the private port is taken', async () => {
    const own = await startRedisServer();
    const admin = new Redis(own.url);
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const clients = async () => String(await admin.client('LIST')).trim().split('\n').length;
      const baseline = await clients();
      const publicPort = await freePort();
      await expect(startTestGateway({ redisUrl: own.url, redisPrefix: 'startup:', port: publicPort, privatePort: taken })).rejects.toThrow(/EADDRINUSE/);
      await expect.poll(clients, { timeout: 5000 }).toBe(baseline);
      // The public port was released too.
      const probe = net.createServer();
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen(publicPort, '127.0.0.1', resolve);
      });
      await new Promise<void>((r) => probe.close(() => r()));
    } finally {
      blocker.close();
      admin.disconnect();
      await own.stop();
    }
  }, 30_000);
});
