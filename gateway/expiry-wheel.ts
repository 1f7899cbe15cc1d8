/**
 * Access-token expiry for every native socket of a node, on one timer.
 *
 * A timer per socket costs a `Timeout`, a closure and often a timer list of
 * its own (one per distinct duration): a few hundred bytes each, which is a
 * large share of what an idle connection weighs. Here sockets are kept in
 * one bucket per expiry second, and a single one-second tick expires the
 * buckets that are due. A socket is therefore closed at most about a second
 * after its token's `exp`.
 */
export interface Expiring {
  /** Called once, when the token's expiry second has passed. */
  expire(): void;
}

export class ExpiryWheel {
  private readonly buckets = new Map<number, Set<Expiring>>();
  /** The last second whose bucket was expired. */
  private doneUpTo: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tickMs = 1000,
    nowMs = Date.now(),
  ) {
    this.doneUpTo = Math.floor(nowMs / 1000);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Schedules `item` to expire after `expSeconds` (seconds since the epoch);
   * already due: on the next tick. Returns the key to cancel it with.
   */
  add(item: Expiring, expSeconds: number): number {
    const second = Math.max(Math.floor(expSeconds), this.doneUpTo + 1);
    let bucket = this.buckets.get(second);
    if (!bucket) this.buckets.set(second, (bucket = new Set()));
    bucket.add(item);
    return second;
  }

  /** Cancels an expiry; `key` is what add() returned. */
  delete(item: Expiring, key: number): void {
    const bucket = this.buckets.get(key);
    if (bucket?.delete(item) && bucket.size === 0) this.buckets.delete(key);
  }

  /** Expires every bucket up to `now` (also called by tests with a fixed clock). */
  tick(nowMs = Date.now()): void {
    const now = Math.floor(nowMs / 1000);
    if (now <= this.doneUpTo) return;
    // After a long stall (or a clock jump) walk the buckets rather than every second.
    const due: number[] = [];
    if (now - this.doneUpTo > this.buckets.size) {
      for (const s of this.buckets.keys()) if (s <= now) due.push(s);
      due.sort((a, b) => a - b);
    } else {
      for (let s = this.doneUpTo + 1; s <= now; s++) if (this.buckets.has(s)) due.push(s);
    }
    this.doneUpTo = now;
    for (const s of due) {
      const bucket = this.buckets.get(s)!;
      this.buckets.delete(s);
      for (const item of bucket) item.expire();
    }
  }

  /** Sockets waiting for their expiry. */
  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.size;
    return n;
  }
}
