/**
 * One behaviour list, run against every Broker implementation: ordering,
 * exact recovery, epochs, trimming, idempotency, reference-counted
 * subscriptions, the service table and the node registry.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBroker } from '../../gateway/broker-memory.ts';
import { RedisBroker } from '../../gateway/broker-redis.ts';
import { compareOffsets, type Broker, type BrokerOptions, type Publication } from '../../gateway/broker.ts';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../support/redis.ts';

interface Impl {
  name: string;
  make(opts?: BrokerOptions): { broker: Broker; second?: () => Broker };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const impls: Impl[] = [
  {
    name: 'memory',
    make(opts) {
      const broker = new MemoryBroker(opts);
      cleanups.push(() => broker.close());
      return { broker };
    },
  },
  {
    name: 'redis',
    make(opts) {
      const url = testRedisUrl();
      const prefix = uniquePrefix('broker');
      const all: Broker[] = [];
      const mk = () => {
        const b = new RedisBroker({ url, ...opts, prefix });
        all.push(b);
        return b;
      };
      const broker = mk();
      cleanups.push(async () => {
        for (const b of all) await b.close();
        await deletePrefix(url, prefix);
      });
      return { broker, second: mk };
    },
  },
];

function collector() {
  const got: Publication[] = [];
  return { got, handler: (p: Publication) => got.push(p) };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const impl of impls) {
  describe(`Broker conformance: ${impl.name}`, () => {
    it('delivers publications to subscribers in offset order with increasing offsets', async () => {
      const { broker } = impl.make();
      const c = collector();
      await broker.subscribe('t:order', c.handler);
      const positions = [];
      for (let i = 0; i < 50; i++) positions.push(await broker.publish({ topic: 't:order', event: 'e', dataJson: JSON.stringify({ i }) }));
      await until(() => c.got.length === 50);
      expect(c.got.map((p) => JSON.parse(p.dataJson).i)).toEqual([...Array(50).keys()]);
      for (let i = 1; i < positions.length; i++) expect(compareOffsets(positions[i]!.offset, positions[i - 1]!.offset)).toBe(1);
      expect(c.got.map((p) => p.offset)).toEqual(positions.map((p) => p.offset));
      expect(new Set(positions.map((p) => p.epoch)).size).toBe(1);
    });

    it('does not deliver other topics and stops after the last unsubscribe', async () => {
      const { broker } = impl.make();
      const a = collector();
      const b = collector();
      await broker.subscribe('t:a', a.handler);
      await broker.subscribe('t:a', b.handler);
      await broker.publish({ topic: 't:other', event: 'e', dataJson: '1' });
      await broker.publish({ topic: 't:a', event: 'e', dataJson: '2' });
      await until(() => a.got.length === 1 && b.got.length === 1);
      await broker.unsubscribe('t:a', a.handler);
      await broker.publish({ topic: 't:a', event: 'e', dataJson: '3' });
      await until(() => b.got.length === 2);
      await broker.unsubscribe('t:a', b.handler);
      await broker.publish({ topic: 't:a', event: 'e', dataJson: '4' });
      const marker = collector();
      await broker.subscribe('t:marker', marker.handler);
      await broker.publish({ topic: 't:marker', event: 'e', dataJson: '0' });
      await until(() => marker.got.length === 1);
      expect(a.got.map((p) => p.dataJson)).toEqual(['2']);
      expect(b.got.map((p) => p.dataJson)).toEqual(['2', '3']);
    });

    it('replays exactly the events after a position, in order', async () => {
      const { broker } = impl.make();
      const first = await broker.publish({ topic: 't:h', event: 'e', dataJson: '0' });
      for (let i = 1; i <= 20; i++) await broker.publish({ topic: 't:h', event: 'e', dataJson: String(i) });
      const h = await broker.history('t:h', first);
      expect(h.recoverable).toBe(true);
      expect(h.publications.map((p) => p.dataJson)).toEqual(Array.from({ length: 20 }, (_, i) => String(i + 1)));
      expect(h.position.offset).toBe(h.publications.at(-1)!.offset);
      const none = await broker.history('t:h', h.position);
      expect(none).toMatchObject({ recoverable: true, publications: [] });
      const limited = await broker.history('t:h', first, 5);
      expect(limited.publications.map((p) => p.dataJson)).toEqual(['1', '2', '3', '4', '5']);
    });

    it('reports a position from another epoch as not recoverable', async () => {
      const { broker } = impl.make();
      const pos = await broker.publish({ topic: 't:ep', event: 'e', dataJson: '0' });
      const h = await broker.history('t:ep', { offset: pos.offset, epoch: 'not-the-epoch' });
      expect(h.recoverable).toBe(false);
      expect(h.position.epoch).toBe(pos.epoch);
    });

    it('keeps a bounded history and says when a position fell out of it', async () => {
      const { broker } = impl.make({ historySize: 10 });
      const first = await broker.publish({ topic: 't:trim', event: 'e', dataJson: '0' });
      for (let i = 1; i < 30; i++) await broker.publish({ topic: 't:trim', event: 'e', dataJson: String(i) });
      const all = await broker.history('t:trim');
      expect(all.publications.map((p) => p.dataJson)).toEqual(Array.from({ length: 10 }, (_, i) => String(20 + i)));
      expect((await broker.history('t:trim', first)).recoverable).toBe(false);
      const tenth = all.publications[0]!;
      const fromKept = await broker.history('t:trim', { offset: tenth.offset, epoch: tenth.epoch });
      expect(fromKept.recoverable).toBe(true);
      expect(fromKept.publications).toHaveLength(9);
    });

    it('trims events older than the history window', async () => {
      const { broker } = impl.make({ historyTtlMs: 200 });
      const first = await broker.publish({ topic: 't:age', event: 'e', dataJson: '0' });
      await broker.publish({ topic: 't:age', event: 'e', dataJson: '1' });
      await new Promise((r) => setTimeout(r, 300));
      await broker.publish({ topic: 't:age', event: 'e', dataJson: '2' });
      const h = await broker.history('t:age');
      expect(h.publications.map((p) => p.dataJson)).toEqual(['2']);
      expect((await broker.history('t:age', first)).recoverable).toBe(false);
    });

    it('suppresses a publish repeated with the same idempotency key', async () => {
      const { broker } = impl.make();
      const c = collector();
      await broker.subscribe('t:idem', c.handler);
      const a = await broker.publish({ topic: 't:idem', event: 'e', dataJson: '1', idempotencyKey: 'k1' });
      const b = await broker.publish({ topic: 't:idem', event: 'e', dataJson: '1', idempotencyKey: 'k1' });
      const d = await broker.publish({ topic: 't:idem', event: 'e', dataJson: '2', idempotencyKey: 'k2' });
      expect(b).toEqual(a);
      expect(d.offset).not.toBe(a.offset);
      await until(() => c.got.length === 2);
      expect((await broker.history('t:idem')).publications.map((p) => p.dataJson)).toEqual(['1', '2']);
    });

    it('stores the service table', async () => {
      const { broker } = impl.make();
      await broker.putService({ name: 'sync', upstream: 'http://127.0.0.1:1337', prefixes: ['/'] });
      await broker.putService({ name: 'notes', upstream: 'http://127.0.0.1:4000', prefixes: ['/notes'] });
      expect((await broker.getService('notes'))?.upstream).toBe('http://127.0.0.1:4000');
      expect((await broker.listServices()).map((s) => s.name)).toEqual(['notes', 'sync']);
      expect(await broker.deleteService('notes')).toBe(true);
      expect(await broker.deleteService('notes')).toBe(false);
      expect(await broker.getService('notes')).toBeUndefined();
    });

    it('lists announced nodes until their heartbeat expires', async () => {
      const { broker } = impl.make();
      const info = { id: 'n1', url: 'http://x', connections: 3, loadFactor: 0.2, dimensions: {}, draining: false, startedAt: '', lastSeen: '' };
      await broker.announceNode(info, 150);
      await broker.announceNode({ ...info, id: 'n2' }, 5000);
      expect((await broker.listNodes()).map((n) => n.id).sort()).toEqual(['n1', 'n2']);
      await new Promise((r) => setTimeout(r, 250));
      expect((await broker.listNodes()).map((n) => n.id)).toEqual(['n2']);
      await broker.removeNode('n2');
      expect(await broker.listNodes()).toEqual([]);
    });

    it('broadcasts control messages', async () => {
      const { broker } = impl.make();
      const got: unknown[] = [];
      broker.onControl((m) => got.push(m));
      await broker.ready();
      await new Promise((r) => setTimeout(r, 50));
      await broker.publishControl({ type: 'disconnect', userId: 'u1' });
      await until(() => got.length === 1);
      expect(got[0]).toEqual({ type: 'disconnect', userId: 'u1' });
    });

    if (impl.name === 'redis') {
      it('fans a publish on one node out to subscribers on another node once each', async () => {
        const { broker, second } = impl.make();
        const other = second!();
        const a = collector();
        const b = collector();
        await broker.subscribe('t:x', a.handler);
        await other.subscribe('t:x', b.handler);
        for (let i = 0; i < 10; i++) await (i % 2 ? broker : other).publish({ topic: 't:x', event: 'e', dataJson: String(i) });
        await until(() => a.got.length === 10 && b.got.length === 10);
        expect(a.got.map((p) => p.offset)).toEqual(b.got.map((p) => p.offset));
        expect(a.got.map((p) => p.dataJson)).toEqual([...Array(10).keys()].map(String));
      });

      it('holds one Redis subscription per topic however many local subscribers', async () => {
        const { broker } = impl.make();
        const rb = broker as RedisBroker;
        const hs = Array.from({ length: 20 }, () => collector());
        await Promise.all(hs.map((h) => broker.subscribe('t:ref', h.handler)));
        expect(rb.subscribedTopicCount()).toBe(1);
        for (const h of hs) await broker.unsubscribe('t:ref', h.handler);
        expect(rb.subscribedTopicCount()).toBe(0);
      });

      it('starts a new epoch when the stream is lost', async () => {
        const { broker } = impl.make();
        const pos = await broker.publish({ topic: 't:lost', event: 'e', dataJson: '0' });
        const url = testRedisUrl();
        const prefix = (broker as unknown as { opts: { prefix: string } }).opts.prefix;
        await deletePrefix(url, prefix);
        const h = await broker.history('t:lost', pos);
        expect(h.recoverable).toBe(false);
        expect(h.position.epoch).not.toBe(pos.epoch);
        const next = await broker.publish({ topic: 't:lost', event: 'e', dataJson: '1' });
        expect(next.epoch).toBe(h.position.epoch);
      });
    }
  });
}
