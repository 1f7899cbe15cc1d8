/**
 * Sync's own request metrics, the baseline `bifrost rollout ramp` compares
 * Bifrost with: `sync_requests_total{status}` and the
 * `sync_request_duration_seconds` histogram, with the same buckets as the
 * gateway's `bifrost_request_duration_seconds`. Each app instance has its own
 * registry (several Syncs can run in one process); the text is served on
 * `GET /__bifrost/metrics` next to the bridge's counters.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { REQUEST_DURATION_BUCKETS } from '../gateway/metrics.ts';

export class SyncRequestMetrics {
  readonly registry = new Registry();

  /** Requests answered, by HTTP status code (HTTP and socket virtual requests alike). */
  readonly requests = new Counter({
    name: 'sync_requests_total',
    help: 'Requests Sync answered (HTTP and socket virtual requests), by status code',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  readonly duration = new Histogram({
    name: 'sync_request_duration_seconds',
    help: 'Time from routing a request to its response being ended, seconds',
    buckets: [...REQUEST_DURATION_BUCKETS],
    registers: [this.registry],
  });

  /** Counts one answered request. */
  observe(status: number, seconds: number): void {
    this.requests.inc({ status: String(status) });
    this.duration.observe(seconds);
  }

  /** Prometheus exposition text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
