/**
 * A native client that behaves as a well-written Bifrost client should:
 * on close it reconnects (after the server's `afterMs` when given) to a live,
 * non-draining node — preferring the most recently started one — and
 * resubscribes with `since` = the last offset it saw. Used by failure drills.
 */
import WebSocket from 'ws';

export interface NodeRef {
  id: string;
  url: string;
}

export class ResilientClient {
  /** Every event received, in arrival order. */
  readonly received: { offset: string; data: unknown }[] = [];
  reconnects = 0;
  recoveredFalse = 0;
  private ws: WebSocket | undefined;
  private epoch: string | undefined;
  private stopped = false;
  private connectedOnce!: Promise<void>;

  constructor(
    private readonly topic: string,
    private readonly token: string,
    /** Where to connect next: called on every (re)connect. */
    private readonly pickNode: () => Promise<NodeRef>,
  ) {}

  start(): Promise<void> {
    this.connectedOnce = this.connect();
    return this.connectedOnce;
  }

  private lastOffset(): string | undefined {
    return this.received.at(-1)?.offset;
  }

  private async connect(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      let node: NodeRef;
      try {
        node = await this.pickNode();
      } catch {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const ok = await this.open(node).catch(() => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random())));
    }
  }

  private open(node: NodeRef): Promise<boolean> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`${node.url.replace(/^http/, 'ws')}/ws?token=${this.token}`);
      let settled = false;
      let subscribed = false;
      let afterMs = 0;
      const done = (ok: boolean) => {
        if (!settled) {
          settled = true;
          resolve(ok);
        }
      };
      ws.on('error', () => done(false));
      ws.on('unexpected-response', () => {
        ws.terminate();
        done(false);
      });
      ws.on('open', () => {
        this.ws = ws;
        const since = this.lastOffset() && this.epoch ? { offset: this.lastOffset(), epoch: this.epoch } : undefined;
        ws.send(JSON.stringify({ id: 1, op: 'subscribe', topic: this.topic, ...(since ? { since } : {}) }));
      });
      ws.on('message', (raw) => {
        const f = JSON.parse(String(raw));
        if (f.op === 'ok' && f.id === 1) {
          if (f.recovered === false) this.recoveredFalse++;
          this.epoch = f.position.epoch;
          subscribed = true;
          done(true);
        } else if (f.op === 'event') {
          this.received.push({ offset: f.offset, data: f.data });
        } else if (f.op === 'reconnect') {
          afterMs = f.afterMs ?? 0;
        } else if (f.op === 'error' && f.id === 1) {
          ws.terminate();
          done(false);
        }
      });
      ws.on('close', () => {
        // Only a socket that got as far as its subscription starts a new connect loop;
        // a failed attempt is retried by the loop that made it.
        if (!subscribed) return done(false);
        if (this.stopped) return;
        this.reconnects++;
        setTimeout(() => void this.connect(), afterMs);
      });
    });
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}

/** Asserts-friendly summary: offsets strictly increasing, duplicates and gaps against the expected list. */
export function compareWithHistory(received: { offset: string }[], expected: string[]): { missing: number; duplicates: number; outOfOrder: number } {
  const seen = new Set<string>();
  let duplicates = 0;
  for (const r of received) {
    if (seen.has(r.offset)) duplicates++;
    seen.add(r.offset);
  }
  const missing = expected.filter((o) => !seen.has(o)).length;
  let outOfOrder = 0;
  const pos = new Map(expected.map((o, i) => [o, i]));
  let last = -1;
  for (const r of received) {
    const p = pos.get(r.offset);
    if (p === undefined) continue;
    if (p <= last) outOfOrder++;
    last = Math.max(last, p);
  }
  return { missing, duplicates, outOfOrder };
}
