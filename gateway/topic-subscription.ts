/**
 * One socket's subscription to one topic, with the recovery seam: while the
 * missed events are read from history, live events are held back; then the
 * history is sent, then the held live events, each offset at most once.
 */
import { compareOffsets, type Broker, type StreamPosition } from './broker.ts';
import { EventForms, type TopicFanout, type TopicSink } from './topic-fanout.ts';

export type Emit = (ev: EventForms) => void;

export class TopicSubscription implements TopicSink {
  private held: EventForms[] | null = [];
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

  deliver(ev: EventForms): void {
    if (this.held) this.held.push(ev);
    else if (this.inOrder) {
      this.last = ev.pub;
      this.emit(ev);
    } else if (this.emitOnce(ev)) this.inOrder = true;
  }

  /** Emits unless the event is at or before the last one emitted; says whether it did. */
  private emitOnce(ev: EventForms): boolean {
    const last = this.last;
    const pub = ev.pub;
    if (last && last.epoch === pub.epoch && compareOffsets(pub.offset, last.offset) <= 0) return false;
    this.last = pub; // a Publication is a position: no allocation per socket per event
    this.emit(ev);
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
    const joined = await fanout.add(this.topic, this);
    let history;
    try {
      history = await broker.history(this.topic, since, since ? historyLimit : 1);
    } catch (err) {
      await fanout.remove(this.topic, this);
      throw err;
    }
    const recovered = since !== undefined && history.recoverable;
    beforeReplay({ recovered, position: history.position });
    if (!joined) {
      // Unsubscribed while the subscribe was under way: nothing is replayed.
      this.held = null;
      return;
    }
    if (recovered) {
      this.last = since;
      for (const p of history.publications) this.emitOnce(new EventForms(p));
    } else {
      this.last = history.position;
    }
    const held = this.held ?? [];
    this.held = null;
    for (const ev of held) if (this.emitOnce(ev)) this.inOrder = true;
  }
}
