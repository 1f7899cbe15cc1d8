/**
 * The shim's Prometheus metrics (`bifrost_shim_*`), on a registry of its own so
 * several shims can live in one process (tests) without clashing.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export class ShimMetrics {
  readonly registry = new Registry();

  /** Routing decisions: route sync|bifrost, reason flag|not_ready|error|invalid_value|no_route_token, source godserver|socket. */
  readonly decisions = new Counter({
    name: 'bifrost_shim_decisions_total',
    help: 'Routing decisions made by the shim, by route, reason and where they were made',
    labelNames: ['route', 'reason', 'source'] as const,
    registers: [this.registry],
  });

  /** Socket upgrades: backend sync|bifrost, outcome ok|rejected|refused|error|aborted|unavailable. */
  readonly upgrades = new Counter({
    name: 'bifrost_shim_upgrades_total',
    help: 'WebSocket upgrades proxied, by backend and outcome',
    labelNames: ['backend', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly liveConnections = new Gauge({
    name: 'bifrost_shim_live_connections',
    help: 'Sockets currently proxied (WebSocket and long-polling sessions), by backend and node',
    labelNames: ['backend', 'node'] as const,
    registers: [this.registry],
  });

  readonly rebalanced = new Counter({
    name: 'bifrost_shim_rebalanced_connections_total',
    help: 'Connections closed so the client reconnects to its new backend, by from/to backend',
    labelNames: ['from', 'to', 'trigger'] as const,
    registers: [this.registry],
  });

  readonly fallbacks = new Counter({
    name: 'bifrost_shim_fallbacks_total',
    help: 'Sockets decided for Bifrost that went to Sync (or got 503) because no Bifrost node was usable',
    labelNames: ['reason', 'action'] as const,
    registers: [this.registry],
  });

  readonly evaluationErrors = new Counter({
    name: 'bifrost_shim_evaluation_errors_total',
    help: 'Flag evaluations that could not be made (answered "sync"), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly routeTokenRejections = new Counter({
    name: 'bifrost_shim_route_token_rejections_total',
    help: 'Socket requests whose bf_route token was missing, malformed or tampered (sent to Sync)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** Correctly signed but expired route tokens: routed by their claims, counted here. */
  readonly routeTokenExpired = new Counter({
    name: 'bifrost_shim_route_token_expired_total',
    help: 'Socket requests whose bf_route token was correctly signed but expired (routed by its user and team all the same)',
    registers: [this.registry],
  });

  readonly flagReloads = new Counter({
    name: 'bifrost_shim_flag_reloads_total',
    help: 'Flags file reloads, by outcome (ok, or error: the last good flags stayed in force)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  /** 1 once the flag source loaded flags, 0 while it has not (every decision is "sync" then). */
  readonly flagSourceReady = new Gauge({
    name: 'bifrost_shim_flag_source_ready',
    help: 'Whether the flag source (flags file or LaunchDarkly) has loaded flags: 1 yes, 0 no (every user goes to Sync)',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  /** The flag source could not load flags: `failed` (the SDK gave up, e.g. 401 invalid key) or `start_timeout` (not loaded at start, still trying). */
  readonly flagSourceFailures = new Counter({
    name: 'bifrost_shim_flag_source_failures_total',
    help: 'Flag source load failures: reason failed (the SDK gave up for good, e.g. an invalid LD_SDK_KEY) or start_timeout (not loaded when the shim started; still retrying)',
    labelNames: ['source', 'reason'] as const,
    registers: [this.registry],
  });

  /** Polling requests with a sid this replica did not know (handshake through another replica, or before a restart), accepted by their backend and pinned here. */
  readonly pollingAdopted = new Counter({
    name: 'bifrost_shim_polling_sessions_adopted_total',
    help: 'Long-polling sessions this shim replica did not start (another replica, or before a restart) whose request its backend accepted, now pinned here',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  readonly godserverRequests = new Counter({
    name: 'bifrost_shim_godserver_requests_total',
    help: 'Godserver init calls through the shim, by upstream status and whether the body was rewritten',
    labelNames: ['status', 'rewritten'] as const,
    registers: [this.registry],
  });

  readonly proxyErrors = new Counter({
    name: 'bifrost_shim_proxy_errors_total',
    help: 'Errors while proxying HTTP or sockets, by backend and kind',
    labelNames: ['backend', 'kind'] as const,
    registers: [this.registry],
  });
}
