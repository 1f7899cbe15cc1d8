/**
 * The bridge's counters in the Prometheus text format, served by the bridge
 * hook on `GET /__bifrost/metrics` (names `bifrost_sync_bridge_*`). Rendered
 * from a BridgeStats snapshot, so each app instance reports its own numbers
 * (no process-global registry).
 */
import type { BridgeStats } from './bridge-queue.ts';

interface MetricDef {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  value: (s: BridgeStats) => number;
}

const METRICS: readonly MetricDef[] = [
  { name: 'bifrost_sync_bridge_enabled', type: 'gauge', help: '1 when the dual-publish bridge is on', value: (s) => (s.enabled ? 1 : 0) },
  { name: 'bifrost_sync_bridge_queue_depth', type: 'gauge', help: 'Publications held now (waiting + in flight)', value: (s) => s.queued },
  { name: 'bifrost_sync_bridge_queue_capacity', type: 'gauge', help: 'Most publications the queue holds (maxQueue)', value: (s) => s.maxQueue },
  { name: 'bifrost_sync_bridge_in_flight', type: 'gauge', help: 'Publications being sent now', value: (s) => s.inFlight },
  { name: 'bifrost_sync_bridge_enqueued_total', type: 'counter', help: 'Model events queued for Bifrost', value: (s) => s.enqueuedTotal },
  { name: 'bifrost_sync_bridge_published_total', type: 'counter', help: 'Publications Bifrost accepted', value: (s) => s.publishedTotal },
  { name: 'bifrost_sync_bridge_failed_attempts_total', type: 'counter', help: 'Publish attempts that failed and were retried', value: (s) => s.failedAttemptsTotal },
  { name: 'bifrost_sync_bridge_rejected_total', type: 'counter', help: 'Publications refused for good (4xx other than 408/429, or not serialisable)', value: (s) => s.rejectedTotal },
  { name: 'bifrost_sync_bridge_dropped_queue_full_total', type: 'counter', help: 'Model events not published because the queue was full', value: (s) => s.droppedQueueFullTotal },
  { name: 'bifrost_sync_bridge_discarded_on_close_total', type: 'counter', help: 'Publications abandoned when the app was closed', value: (s) => s.discardedOnCloseTotal },
];

/** Prometheus exposition text for one snapshot. */
export function renderBridgeMetrics(stats: BridgeStats): string {
  return METRICS.map((m) => `# HELP ${m.name} ${m.help}\n# TYPE ${m.name} ${m.type}\n${m.name} ${m.value(stats)}\n`).join('');
}
