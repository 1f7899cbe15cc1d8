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
});
