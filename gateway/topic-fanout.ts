/**
 * Node-local fan-out: one broker subscription per topic per node (reference
 * counted over every local socket, native or legacy), and each event turned
 * into a native frame at most once and parsed for legacy sockets at most once,
 * however many sockets receive it.
 */
import type { Broker, Publication, PublicationHandler } from './broker.ts';
import { eventFrame } from './native-protocol.ts';

/** Something on this node that receives a topic's events (one socket's subscription). */
export interface TopicSink {
  deliver(pub: Publication, frame: () => string, data: () => unknown): void;
}

interface TopicEntry {
  sinks: Set<TopicSink>;
  handler: PublicationHandler;
  ready: Promise<void>;
}

export class TopicFanout {
  private readonly topics = new Map<string, TopicEntry>();

  constructor(private readonly broker: Broker) {}

  /** Adds a sink; resolves once the broker delivers the topic's live events to this node. */
  async add(topic: string, sink: TopicSink): Promise<void> {
    for (;;) {
      let entry = this.topics.get(topic);
      if (!entry) {
        const sinks = new Set<TopicSink>();
        const handler: PublicationHandler = (pub) => {
          let frame: string | undefined;
          let data: unknown;
          let parsed = false;
          const frameOnce = () => (frame ??= eventFrame(pub.topic, pub.event, pub.offset, pub.dataJson));
          const dataOnce = () => {
            if (!parsed) {
              data = JSON.parse(pub.dataJson);
              parsed = true;
            }
            return data;
          };
          for (const s of sinks) s.deliver(pub, frameOnce, dataOnce);
        };
        entry = { sinks, handler, ready: this.broker.subscribe(topic, handler) };
        this.topics.set(topic, entry);
        entry.ready.catch(() => {
          if (this.topics.get(topic) === entry) this.topics.delete(topic);
        });
      }
      entry.sinks.add(sink);
      try {
        await entry.ready;
      } catch (err) {
        entry.sinks.delete(sink);
        throw err;
      }
      // The last sink may have left (and the entry been dropped) while we waited.
      if (this.topics.get(topic) === entry && entry.sinks.has(sink)) return;
    }
  }

  async remove(topic: string, sink: TopicSink): Promise<void> {
    const entry = this.topics.get(topic);
    if (!entry || !entry.sinks.delete(sink)) return;
    if (entry.sinks.size > 0) return;
    this.topics.delete(topic);
    await this.broker.unsubscribe(topic, entry.handler).catch(() => {});
  }

  topicCount(): number {
    return this.topics.size;
  }
}
