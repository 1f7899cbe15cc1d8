/** Node-local fan-out: each event reaches every local sink once, in forms made at most once per event. */
import { describe, expect, it } from 'vitest';
import { MemoryBroker } from '../../gateway/broker-memory.ts';
import { eventFrame } from '../../gateway/native-protocol.ts';
import { EventForms, TopicFanout, type TopicSink } from '../../gateway/topic-fanout.ts';

class RecordingSink implements TopicSink {
  readonly got: EventForms[] = [];
  deliver(ev: EventForms): void {
    this.got.push(ev);
  }
}

describe('TopicFanout', () => {
  it('hands every sink of a topic the same event object, whose frame and data are built once', async () => {
    const broker = new MemoryBroker();
    const fanout = new TopicFanout(broker);
    const sinks = [new RecordingSink(), new RecordingSink(), new RecordingSink()];
    for (const s of sinks) await fanout.add('room:1', s);
    const other = new RecordingSink();
    await fanout.add('room:2', other);
    expect(fanout.topicCount()).toBe(2);

    const pos = await broker.publish({ topic: 'room:1', event: 'said', dataJson: '{"text":"hi","n":1}' });
    await new Promise((r) => setImmediate(r));

    const ev = sinks[0]!.got[0]!;
    for (const s of sinks) expect(s.got).toEqual([ev]);
    for (const s of sinks) expect(s.got[0]).toBe(ev);
    expect(other.got).toEqual([]);
    expect(ev.pub).toMatchObject({ topic: 'room:1', event: 'said', offset: pos.offset, epoch: pos.epoch });
    // The native frame: built once, the same string for every socket.
    expect(ev.frame()).toBe(eventFrame('room:1', 'said', pos.offset, '{"text":"hi","n":1}'));
    expect(sinks[1]!.got[0]!.frame()).toBe(ev.frame());
    // The parsed data: one object shared by every legacy socket.
    expect(ev.data()).toEqual({ text: 'hi', n: 1 });
    expect(sinks[2]!.got[0]!.data()).toBe(ev.data());
    await broker.close();
  });

  it('builds one object per event, and parses the data only when a sink asks (bad JSON fails that sink alone)', async () => {
    const broker = new MemoryBroker();
    const fanout = new TopicFanout(broker);
    const sink = new RecordingSink();
    await fanout.add('t', sink);
    await broker.publish({ topic: 't', event: 'a', dataJson: '{"i":1}' });
    await broker.publish({ topic: 't', event: 'b', dataJson: '{"i":2}' });
    await new Promise((r) => setImmediate(r));
    expect(sink.got.map((e) => e.pub.event)).toEqual(['a', 'b']);
    expect(sink.got[0]).not.toBe(sink.got[1]);
    expect(sink.got.map((e) => e.data())).toEqual([{ i: 1 }, { i: 2 }]);
    // Made lazily: building the event and its frame does not parse; only data() does.
    const bad = new EventForms({ topic: 't', event: 'x', offset: '9', epoch: 'e', dataJson: '{not json' });
    expect(bad.frame()).toContain('{not json');
    expect(() => bad.data()).toThrow(SyntaxError);
    await fanout.remove('t', sink);
    expect(fanout.topicCount()).toBe(0);
    await broker.close();
  });

  it('keeps delivering to the other sinks when one throws, and the publish still succeeds', async () => {
    const broker = new MemoryBroker();
    const failures: unknown[] = [];
    const fanout = new TopicFanout(broker, (err) => failures.push(err));
    const before = new RecordingSink();
    const after = new RecordingSink();
    await fanout.add('t', before);
    await fanout.add('t', { deliver: () => { throw new Error('socket refused the event'); } });
    await fanout.add('t', after);
    // The memory broker calls the handler inside publish(): a throw there used to
    // turn a stored event into a failed publish (and a retry into a duplicate).
    const pos = await broker.publish({ topic: 't', event: 'e', dataJson: '1' });
    expect(before.got.map((e) => e.pub.offset)).toEqual([pos.offset]);
    expect(after.got.map((e) => e.pub.offset)).toEqual([pos.offset]);
    expect(failures).toHaveLength(1);
    expect((failures[0] as Error).message).toBe('socket refused the event');
    await broker.close();
  });

  it('does not add a sink back when it was removed while the broker subscription was pending', async () => {
    const broker = new MemoryBroker();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const subscribe = broker.subscribe.bind(broker);
    let subscribes = 0;
    broker.subscribe = async (topic, handler) => {
      subscribes++;
      await gate;
      await subscribe(topic, handler);
    };
    const fanout = new TopicFanout(broker);
    const sink = new RecordingSink();
    const adding = fanout.add('t', sink);
    const removing = fanout.remove('t', sink); // the unsubscribe overtakes the subscribe
    release();
    await removing;
    expect(await adding).toBe(false);
    expect(fanout.topicCount()).toBe(0);
    expect(subscribes).toBe(1);
    await broker.publish({ topic: 't', event: 'e', dataJson: '1' });
    expect(sink.got).toEqual([]);

    // A re-subscribe (remove + add) while the first add is pending: the sink is in the fan-out once.
    const again = new RecordingSink();
    let release2!: () => void;
    const gate2 = new Promise<void>((r) => (release2 = r));
    broker.subscribe = async (topic, handler) => {
      await gate2;
      await subscribe(topic, handler);
    };
    const first = fanout.add('u', again);
    const removing2 = fanout.remove('u', again);
    const second = fanout.add('u', again);
    release2();
    await removing2;
    expect(await first).toBe(false);
    expect(await second).toBe(true);
    await new Promise((r) => setImmediate(r));
    await broker.publish({ topic: 'u', event: 'e', dataJson: '2' });
    expect(again.got).toHaveLength(1);
    // The first subscribe's broker handler was let go once it completed.
    expect((broker as unknown as { handlers: Map<string, Set<unknown>> }).handlers.get('u')?.size).toBe(1);
    await broker.close();
  });
});
