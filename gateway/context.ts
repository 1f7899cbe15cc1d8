/** What every part of a gateway node shares: options, broker, fan-out, routing, registry, metrics, log. */
import type { Logger } from 'pino';
import type { Broker } from './broker.ts';
import type { ConnectionRegistry } from './client-connection.ts';
import type { ResolvedGatewayOptions } from './config.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { ServiceRouter } from './service-router.ts';
import type { TopicFanout } from './topic-fanout.ts';
import type { TopicPolicy } from './topic-policy.ts';
import type { LoadFactor } from './load-factor.ts';

export interface GatewayContext {
  opts: ResolvedGatewayOptions;
  broker: Broker;
  fanout: TopicFanout;
  router: ServiceRouter;
  registry: ConnectionRegistry;
  metrics: GatewayMetrics;
  policy: TopicPolicy;
  load: LoadFactor;
  log: Logger;
  /** True once the node started draining: no new connections. */
  isDraining(): boolean;
}
