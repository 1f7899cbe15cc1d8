/**
 * Node-local fan-out: one broker subscription per topic per node (reference
 * counted over every local socket, native or legacy), and each event turned
 * into a native frame at most once and parsed for legacy sockets at most once,
 * however many sockets receive it.
 */
import type { Broker, Publication, PublicationHandler } from './broker.ts';
import { eventFrame } from './native-protocol.ts';

/**
 * One event in the forms this node's sockets need: the native frame and the
 * parsed data, each made at most once, on first use, however many sockets
 * receive it. A class rather than two closures per event: no per-event
 * function objects (and no per-closure name wrapper from the TypeScript loader).
 */
export class EventForms {
  private frameText: string | undefined;
  private parsed = false;
  private value: unknown;

  constructor(readonly pub: Publication) {}

  /** The native `event` frame. */
  frame(): string {
    return (this.frameText ??= eventFrame(this.pub.topic, this.pub.event, this.pub.offset, this.pub.dataJson));
  }

  /** The event's data, parsed (for legacy sockets, which emit it as an object). */
  data(): unknown {
    if (!this.parsed) {
      this.value = JSON.parse(this.pub.dataJson);
      this.parsed = true;
    }
    return this.value;
  }
}

/** Something on this node that receives a topic's events (one socket's subscription). */
export interface TopicSink {
  deliver(ev: EventForms): void;
}

interface TopicEntry {
  sinks: Set<TopicSink>;
  handler: PublicationHandler;
  ready: Promise<void>;
}

/** Called when a sink throws while taking an event; the other sinks still get it. */
export type SinkFailureHandler = (err: unknown, pub: Publication) => void;

export class TopicFanout {
  private readonly topics = new Map<string, TopicEntry>();

  constructor(
    private readonly broker: Broker,
    private readonly onSinkFailure: SinkFailureHandler = () => {},
  ) {}

  /**
   * Adds a sink; resolves once the broker delivers the topic's live events to
   * this node. Resolves false when the sink was removed while the broker
   * subscription was being made (an unsubscribe overtook the subscribe): the
   * sink is then not added back.
   */
  async add(topic: string, sink: TopicSink): Promise<boolean> {
    let entry = this.topics.get(topic);
    if (!entry) {
      const sinks = new Set<TopicSink>();
      const onFailure = this.onSinkFailure;
      const handler: PublicationHandler = (pub) => {
        const ev = new EventForms(pub);
        // One sink failing (a socket that cannot take the event) must never
        // keep the event from the sinks after it.
        for (const s of sinks) {
          try {
            s.deliver(ev);
          } catch (err) {
            onFailure(err, pub);
          }
        }
      };
      entry = { sinks, handler, ready: this.broker.subscribe(topic, handler) };
      this.topics.set(topic, entry);
      const created = entry;
      entry.ready.catch(() => {
        if (this.topics.get(topic) === created) this.topics.delete(topic);
      });
    }
    entry.sinks.add(sink);
    try {
      await entry.ready;
    } catch (err) {
      entry.sinks.delete(sink);
      throw err;
    }
    // remove() took the sink out while we waited: it stays out.
    return this.topics.get(topic) === entry && entry.sinks.has(sink);
  }

  async remove(topic: string, sink: TopicSink): Promise<void> {
    const entry = this.topics.get(topic);
    if (!entry || !entry.sinks.delete(sink)) return;
    if (entry.sinks.size > 0) return;
    this.topics.delete(topic);
    // After a pending subscribe settles, so the broker never keeps a handler it took after the unsubscribe.
    await entry.ready.then(
      () => this.broker.unsubscribe(topic, entry.handler).catch(() => {}),
      () => {},
    );
  }

  topicCount(): number {
    return this.topics.size;
  }
}
