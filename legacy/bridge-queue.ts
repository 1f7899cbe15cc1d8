/**
 * The dual-publish bridge's outbox: a bounded, in-memory queue of publications
 * for Bifrost's private API (`POST /v1/publish`), drained with retries.
 *
 * Guarantees:
 * - per-topic order: each topic is a FIFO lane with at most one publish in
 *   flight; a later event of a topic is never sent before an earlier one
 *   succeeded (or was rejected for good);
 * - no silent loss: a failed publish (network error, timeout, 5xx, 408, 429)
 *   is retried with exponential backoff (p-retry, jittered, capped) for as long
 *   as the queue is open; when the queue is full a new publication is refused,
 *   counted in `droppedQueueFullTotal` and logged; a 4xx answer other than
 *   408/429 is final: counted in `rejectedTotal` and logged;
 * - duplicates are harmless: every publication carries an `idempotencyKey`
 *   that stays the same across its retries.
 *
 * Topics are drained in parallel, up to `maxConcurrentTopics` lanes at once,
 * round-robin so that one busy topic cannot starve the others.
 */
import { randomUUID } from 'node:crypto';
import pRetry, { AbortError } from 'p-retry';
import type { SyncLogger } from './sync-logger.ts';

export interface BridgeQueueOptions {
  /** Base URL of Bifrost's private API, e.g. http://127.0.0.1:8081. */
  privateUrl: string;
  /** Bearer token for the private API (BIFROST_SERVICE_TOKEN). */
  serviceToken: string;
  /** Most publications held at once (waiting + in flight). Default 10 000. */
  maxQueue: number;
  /** Topics published in parallel. Default 8. */
  maxConcurrentTopics: number;
  /** Timeout of one publish attempt. Default 5 000 ms. */
  publishTimeoutMs: number;
  /** First retry delay. Default 100 ms. */
  minRetryDelayMs: number;
  /** Longest retry delay. Default 5 000 ms. */
  maxRetryDelayMs: number;
  /** Shortest interval between two repeated warnings of the same kind. Default 5 000 ms. */
  warnIntervalMs: number;
}

export const BRIDGE_QUEUE_DEFAULTS = {
  maxQueue: 10_000,
  maxConcurrentTopics: 8,
  publishTimeoutMs: 5_000,
  minRetryDelayMs: 100,
  maxRetryDelayMs: 5_000,
  warnIntervalMs: 5_000,
} as const satisfies Omit<BridgeQueueOptions, 'privateUrl' | 'serviceToken'>;

/** Counters of the bridge, served on `GET /__bifrost/bridge`. */
export interface BridgeStats {
  enabled: boolean;
  /** The private API publications go to (absent when disabled). */
  target?: string;
  maxQueue: number;
  /** Publications held now (waiting + in flight). */
  queued: number;
  /** Publications being sent now. */
  inFlight: number;
  enqueuedTotal: number;
  publishedTotal: number;
  /** Attempts that failed and were (or will be) retried. */
  failedAttemptsTotal: number;
  /** Publications Bifrost refused for good (4xx other than 408/429). */
  rejectedTotal: number;
  /** Publications refused because the queue was full. */
  droppedQueueFullTotal: number;
  /** Publications still queued when the bridge was closed. */
  discardedOnCloseTotal: number;
  lastError?: string;
  lastErrorAt?: string;
}

/** Stats of a bridge that is switched off. */
export function disabledBridgeStats(): BridgeStats {
  return {
    enabled: false,
    maxQueue: 0,
    queued: 0,
    inFlight: 0,
    enqueuedTotal: 0,
    publishedTotal: 0,
    failedAttemptsTotal: 0,
    rejectedTotal: 0,
    droppedQueueFullTotal: 0,
    discardedOnCloseTotal: 0,
  };
}

interface Publication {
  topic: string;
  /** The JSON body of `POST /v1/publish`, serialised once at enqueue time. */
  body: string;
  idempotencyKey: string;
}

class RetryablePublishError extends Error {
  override name = 'RetryablePublishError';
}

/** Logs one kind of warning at most once per interval, saying how many were suppressed. */
class ThrottledWarning {
  private lastAt = 0;
  private suppressed = 0;
  constructor(
    private readonly log: SyncLogger,
    private readonly intervalMs: number,
    private readonly level: 'warn' | 'error' = 'warn',
  ) {}
  warn(fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.lastAt < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.log[this.level]({ ...fields, suppressedSinceLastWarning: this.suppressed }, msg);
    this.lastAt = now;
    this.suppressed = 0;
  }
}

export class BridgePublishQueue {
  private readonly opts: BridgeQueueOptions;
  private readonly publishUrl: string;
  private readonly lanes = new Map<string, Publication[]>();
  /** Topics with waiting publications and no lane running, in round-robin order. */
  private readonly ready: string[] = [];
  private readonly running = new Set<string>();
  private readonly abort = new AbortController();
  private readonly keyPrefix = `sync-${randomUUID()}`;
  private seq = 0;
  private size = 0;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private readonly stats: BridgeStats;
  private readonly failureWarning: ThrottledWarning;
  private readonly dropWarning: ThrottledWarning;
  private readonly rejectionLog: ThrottledWarning;

  constructor(
    options: Pick<BridgeQueueOptions, 'privateUrl' | 'serviceToken'> & Partial<BridgeQueueOptions>,
    private readonly log: SyncLogger,
  ) {
    const opts: BridgeQueueOptions = { ...BRIDGE_QUEUE_DEFAULTS, ...stripUndefined(options) } as BridgeQueueOptions;
    for (const key of ['maxQueue', 'maxConcurrentTopics', 'publishTimeoutMs', 'minRetryDelayMs', 'maxRetryDelayMs'] as const) {
      if (!Number.isFinite(opts[key]) || opts[key] <= 0) throw new Error(`bridge option ${key} must be a positive number (got ${opts[key]})`);
    }
    if (opts.maxRetryDelayMs < opts.minRetryDelayMs) throw new Error('bridge option maxRetryDelayMs must be >= minRetryDelayMs');
    let base: URL;
    try {
      base = new URL(opts.privateUrl);
    } catch {
      throw new Error(`bridge: invalid Bifrost private URL "${opts.privateUrl}"`);
    }
    if (!opts.serviceToken) throw new Error('bridge: a service token is required');
    this.opts = opts;
    this.publishUrl = new URL('v1/publish', base.href.endsWith('/') ? base.href : base.href + '/').href;
    this.stats = { ...disabledBridgeStats(), enabled: true, target: this.publishUrl, maxQueue: opts.maxQueue };
    this.failureWarning = new ThrottledWarning(log, opts.warnIntervalMs);
    this.dropWarning = new ThrottledWarning(log, opts.warnIntervalMs);
    this.rejectionLog = new ThrottledWarning(log, opts.warnIntervalMs, 'error');
  }

  /**
   * Queues one event for Bifrost. Returns false (and counts and logs it) when
   * the queue is full or closed; never throws and never blocks the caller.
   */
  enqueue(topic: string, event: string, data: unknown): boolean {
    if (this.closed) {
      this.stats.discardedOnCloseTotal++;
      return false;
    }
    if (this.size >= this.opts.maxQueue) {
      this.stats.droppedQueueFullTotal++;
      this.dropWarning.warn(
        { topic, maxQueue: this.opts.maxQueue, droppedQueueFullTotal: this.stats.droppedQueueFullTotal },
        'bridge queue full: event not published to Bifrost',
      );
      return false;
    }
    const idempotencyKey = `${this.keyPrefix}:${++this.seq}`;
    let body: string;
    try {
      body = JSON.stringify({ topic, event, data, idempotencyKey });
    } catch (err) {
      this.stats.rejectedTotal++;
      this.noteError(err);
      this.rejectionLog.warn({ topic, err: (err as Error).message }, 'bridge event is not serialisable: not published to Bifrost');
      return false;
    }
    const pub: Publication = { topic, idempotencyKey, body };
    let lane = this.lanes.get(topic);
    if (!lane) {
      lane = [];
      this.lanes.set(topic, lane);
    }
    lane.push(pub);
    this.size++;
    this.stats.enqueuedTotal++;
    if (lane.length === 1 && !this.running.has(topic)) this.ready.push(topic);
    this.pump();
    return true;
  }

  /** A snapshot of the counters. */
  snapshot(): BridgeStats {
    return { ...this.stats, queued: this.size, inFlight: this.running.size };
  }

  /** Resolves once nothing is queued (or at once if nothing is). */
  whenIdle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops the queue: waits up to `flushTimeoutMs` for queued publications to
   * go out, then abandons the rest (counted in `discardedOnCloseTotal`, logged).
   */
  async close(flushTimeoutMs = 2_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.size > 0 && flushTimeoutMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.whenIdle(), new Promise<void>((r) => (timer = setTimeout(r, flushTimeoutMs)))]);
      clearTimeout(timer);
    }
    if (this.size > 0) {
      this.stats.discardedOnCloseTotal += this.size;
      this.log.warn({ discarded: this.size }, 'bridge closed with events not yet published to Bifrost');
    }
    this.abort.abort(new Error('bridge closed'));
    this.lanes.clear();
    this.ready.length = 0;
    this.size = 0;
    this.notifyIdle();
  }

  private pump(): void {
    for (;;) {
      if (this.abort.signal.aborted || this.running.size >= this.opts.maxConcurrentTopics) return;
      const topic = this.ready.shift();
      if (topic === undefined) return;
      this.running.add(topic);
      void this.runLane(topic);
    }
  }

  /** Sends the head of one topic's lane, then hands the lane back to the round-robin. */
  private async runLane(topic: string): Promise<void> {
    const lane = this.lanes.get(topic);
    const pub = lane?.[0];
    if (!lane || !pub) {
      this.running.delete(topic);
      return;
    }
    try {
      await this.publishWithRetry(pub);
      this.stats.publishedTotal++;
    } catch (err) {
      if (this.abort.signal.aborted) {
        this.running.delete(topic);
        return; // close() accounts for what was left
      }
      this.stats.rejectedTotal++;
      this.noteError(err);
      this.rejectionLog.warn(
        { topic, idempotencyKey: pub.idempotencyKey, err: (err as Error).message, rejectedTotal: this.stats.rejectedTotal },
        'Bifrost refused a bridge publication; it will not be retried',
      );
    }
    if (this.abort.signal.aborted) {
      this.running.delete(topic);
      return;
    }
    lane.shift();
    this.size--;
    this.running.delete(topic);
    if (lane.length > 0) this.ready.push(topic);
    else this.lanes.delete(topic);
    if (this.size === 0) this.notifyIdle();
    this.pump();
  }

  private publishWithRetry(pub: Publication): Promise<void> {
    return pRetry(() => this.publishOnce(pub), {
      forever: true,
      factor: 2,
      minTimeout: this.opts.minRetryDelayMs,
      maxTimeout: this.opts.maxRetryDelayMs,
      randomize: true,
      signal: this.abort.signal,
      onFailedAttempt: (err) => {
        this.stats.failedAttemptsTotal++;
        this.noteError(err);
        this.failureWarning.warn(
          { topic: pub.topic, attempt: err.attemptNumber, err: err.message, queued: this.size, failedAttemptsTotal: this.stats.failedAttemptsTotal },
          'bridge publish to Bifrost failed; retrying with backoff',
        );
      },
    });
  }

  private async publishOnce(pub: Publication): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.publishUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.opts.serviceToken}` },
        body: pub.body,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.publishTimeoutMs)]),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      throw new RetryablePublishError(`publish failed: ${(err as Error).message}${cause ? ` (${cause})` : ''}`);
    }
    // Drain the body so the keep-alive connection is reused.
    const text = await res.text().catch(() => '');
    if (res.ok) return;
    const detail = `publish answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
    if (res.status >= 500 || res.status === 408 || res.status === 429) throw new RetryablePublishError(detail);
    throw new AbortError(detail);
  }

  private noteError(err: unknown): void {
    this.stats.lastError = (err as Error)?.message ?? String(err);
    this.stats.lastErrorAt = new Date().toISOString();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
