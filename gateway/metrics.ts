/** Prometheus metrics of one gateway node (`bifrost_*`, units in the names). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LOOP_SAMPLE_MS } from './load-factor.ts';

/** Buckets (seconds) of `bifrost_request_duration_seconds`; Sync's `sync_request_duration_seconds` uses the same, so the ramp compares like with like. */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly connections: Gauge<'protocol'>;
  readonly connectionsOpened: Counter<'protocol'>;
  readonly connectionsClosed: Counter<'protocol' | 'code'>;
  readonly upgradesRejected: Counter<'protocol' | 'reason'>;
  readonly framesReceived: Counter<'protocol' | 'op'>;
  readonly framesRejected: Counter<'protocol' | 'reason'>;
  readonly eventsDelivered: Counter<'protocol'>;
  readonly publishes: Counter<'outcome'>;
  readonly requests: Counter<'protocol' | 'service' | 'status'>;
  readonly requestDuration: Histogram<'protocol' | 'service'>;
  readonly recoveries: Counter<'outcome'>;
  readonly slowConsumers: Counter<'protocol'>;
  readonly deliveryFailures: Counter<string>;
  readonly loadFactor: Gauge<string>;
  readonly loadDimension: Gauge<'dimension'>;
  readonly brokerUp: Gauge<string>;
  readonly draining: Gauge<string>;

  constructor(nodeId: string, defaultMetrics = false) {
    this.registry.setDefaultLabels({ node: nodeId });
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'bifrost_process_', eventLoopMonitoringPrecision: LOOP_SAMPLE_MS });
    const r = [this.registry];
    this.connections = new Gauge({ name: 'bifrost_connections', help: 'Open client connections', labelNames: ['protocol'], registers: r });
    this.connectionsOpened = new Counter({ name: 'bifrost_connections_opened_total', help: 'Client connections accepted', labelNames: ['protocol'], registers: r });
    this.connectionsClosed = new Counter({ name: 'bifrost_connections_closed_total', help: 'Client connections closed, by close code', labelNames: ['protocol', 'code'], registers: r });
    this.upgradesRejected = new Counter({ name: 'bifrost_upgrades_rejected_total', help: 'Connection attempts refused', labelNames: ['protocol', 'reason'], registers: r });
    this.framesReceived = new Counter({ name: 'bifrost_frames_received_total', help: 'Client frames by op', labelNames: ['protocol', 'op'], registers: r });
    this.framesRejected = new Counter({ name: 'bifrost_frames_rejected_total', help: 'Client frames refused, by reason', labelNames: ['protocol', 'reason'], registers: r });
    this.eventsDelivered = new Counter({ name: 'bifrost_events_delivered_total', help: 'Events written to client sockets', labelNames: ['protocol'], registers: r });
    this.publishes = new Counter({ name: 'bifrost_publishes_total', help: 'Private API publishes', labelNames: ['outcome'], registers: r });
    this.requests = new Counter({ name: 'bifrost_requests_total', help: 'Client requests proxied to services, by status', labelNames: ['protocol', 'service', 'status'], registers: r });
    this.requestDuration = new Histogram({
      name: 'bifrost_request_duration_seconds',
      help: 'Client request round trip through the gateway to the service',
      labelNames: ['protocol', 'service'],
      buckets: [...REQUEST_DURATION_BUCKETS],
      registers: r,
    });
    this.recoveries = new Counter({ name: 'bifrost_recoveries_total', help: 'Subscribes with a position, by outcome', labelNames: ['outcome'], registers: r });
    this.slowConsumers = new Counter({ name: 'bifrost_slow_consumers_total', help: 'Clients closed because they did not read fast enough', labelNames: ['protocol'], registers: r });
    this.deliveryFailures = new Counter({ name: 'bifrost_delivery_failures_total', help: 'Events a local socket failed to take (the other sockets still got them)', registers: r });
    this.loadFactor = new Gauge({ name: 'bifrost_load_factor', help: 'Max of the load dimensions (1.0 = at target)', registers: r });
    this.loadDimension = new Gauge({ name: 'bifrost_load_dimension_ratio', help: 'Each load dimension against its target', labelNames: ['dimension'], registers: r });
    this.brokerUp = new Gauge({ name: 'bifrost_broker_up', help: '1 when the broker is reachable', registers: r });
    this.draining = new Gauge({ name: 'bifrost_draining', help: '1 while the node drains', registers: r });
    this.brokerUp.set(1);
  }
}
