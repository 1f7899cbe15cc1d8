/**
 * One socket's subscription to one topic, with the recovery seam: while the
 * missed events are read from history, live events are held back; then the
 * history is sent, then the held live events, each offset at most once.
 */
import { compareOffsets, type Broker, type Publication, type StreamPosition } from './broker.ts';
import { eventFrame } from './native-protocol.ts';
import type { TopicFanout, TopicSink } from './topic-fanout.ts';

export type Emit = (pub: Publication, frame: () => string, data: () => unknown) => void;

export class TopicSubscription implements TopicSink {
  private held: [Publication, () => string, () => unknown][] | null = [];
  private last: StreamPosition | undefined;
  /**
   * Set once a live event passed the duplicate check: the broker delivers a
   * topic's live events to this node in order and once, so every later live
   * event is newer and the per-socket offset comparison can be skipped.
   */
  private inOrder = false;

  constructor(
    readonly topic: string,
    private readonly emit: Emit,
  ) {}

  deliver(pub: Publication, frame: () => string, data: () => unknown): void {
    if (this.held) this.held.push([pub, frame, data]);
    else if (this.inOrder) {
      this.last = pub;
      this.emit(pub, frame, data);
    } else if (this.emitOnce(pub, frame, data)) this.inOrder = true;
  }

  /** Emits unless the event is at or before the last one emitted; says whether it did. */
  private emitOnce(pub: Publication, frame: () => string, data: () => unknown): boolean {
    const last = this.last;
    if (last && last.epoch === pub.epoch && compareOffsets(pub.offset, last.offset) <= 0) return false;
    this.last = pub; // a Publication is a position: no allocation per socket per event
    this.emit(pub, frame, data);
    return true;
  }

  /**
   * Joins the topic on this node, reads the history after `since` and opens
   * the live stream. The caller sends its acknowledgement in `beforeReplay`
   * (so the ok frame precedes the replayed events).
   */
  async start(
    fanout: TopicFanout,
    broker: Broker,
    since: StreamPosition | undefined,
    historyLimit: number,
    beforeReplay: (r: { recovered: boolean; position: StreamPosition }) => void,
  ): Promise<void> {
    await fanout.add(this.topic, this);
    let history;
    try {
      history = await broker.history(this.topic, since, since ? historyLimit : 1);
    } catch (err) {
      await fanout.remove(this.topic, this);
      throw err;
    }
    const recovered = since !== undefined && history.recoverable;
    beforeReplay({ recovered, position: history.position });
    if (recovered) {
      this.last = since;
      for (const p of history.publications) {
        this.emitOnce(p, () => eventFrame(p.topic, p.event, p.offset, p.dataJson), () => JSON.parse(p.dataJson));
      }
    } else {
      this.last = history.position;
    }
    const held = this.held ?? [];
    this.held = null;
    for (const [p, f, d] of held) if (this.emitOnce(p, f, d)) this.inOrder = true;
  }
}
