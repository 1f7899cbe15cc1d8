/** The embedded broker forgets idle topics, like the Redis broker's stream keys expire, unless a local subscriber holds them. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker } from '../../gateway/broker-memory.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('MemoryBroker retention', () => {
  it('drops streams idle for streamKeyTtlMs that nobody on the node subscribes to', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z'), toFake: ['Date'] });
    const broker = new MemoryBroker({ streamKeyTtlMs: 60_000, historyTtlMs: 30_000 });
    await broker.publish({ topic: 'published', event: 'e', dataJson: '1' });
    await broker.history('only-read');
    await broker.subscribe('held', () => {});
    await broker.publish({ topic: 'held', event: 'e', dataJson: '1' });
    const old = await broker.history('published');
    expect(broker.streamCount()).toBe(3);

    vi.setSystemTime(Date.now() + 30_000);
    await broker.publish({ topic: 'fresh', event: 'e', dataJson: '1' });
    expect(broker.streamCount()).toBe(4); // nothing idle long enough yet

    vi.setSystemTime(Date.now() + 61_000);
    await broker.publish({ topic: 'fresh', event: 'e', dataJson: '2' });
    // `published` and `only-read` are gone; `held` has a subscriber; `fresh` is recent.
    expect(broker.streamCount()).toBe(2);
    // A position in a dropped stream is reported lost, as after a Redis key expiry.
    const h = await broker.history('published', old.position);
    expect(h.recoverable).toBe(false);
    await broker.close();
  });
});
