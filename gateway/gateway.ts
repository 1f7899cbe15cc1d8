/**
 * One Bifrost node: the public gateway (native `/ws`, legacy `/socket.io/`,
 * probes, metrics) and the private API, sharing one broker connection.
 * Production runs N of these behind a load balancer (`bifrost gateway`).
 */
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import type { Broker, NodeInfo } from './broker.ts';
import { MemoryBroker } from './broker-memory.ts';
import { RedisBroker } from './broker-redis.ts';
import { ConnectionRegistry } from './client-connection.ts';
import { resolveGatewayOptions, usesRedisBroker, type GatewayOptions } from './config.ts';
import type { GatewayContext } from './context.ts';
import { LoadFactor } from './load-factor.ts';
import { GatewayMetrics } from './metrics.ts';
import { NativeEndpoint } from './native-endpoint.ts';
import { applyConnectionControl } from './private-api/connections.ts';
import { buildPrivateApi } from './private-api/index.ts';
import { ServiceRouter } from './service-router.ts';
import { TopicFanout } from './topic-fanout.ts';
import { defaultTopicPolicy } from './topic-policy.ts';
import { refuseUpgrade } from './upgrade-refusal.ts';
import { redactUrl } from './redact-url.ts';
import { LegacyEndpoint } from './legacy-endpoint.ts';

export interface RunningGateway {
  nodeId: string;
  publicUrl: string;
  privateUrl: string;
  port: number;
  privatePort: number;
  ctx: GatewayContext;
  /** Stops taking connections and moves every client away over the window; resolves when all are gone. */
  drain(windowMs?: number): Promise<void>;
  /** Closes everything at once (after drain for a graceful stop). */
  close(): Promise<void>;
}

function describeListen(host: string, port: number): string {
  return `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}`;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const opts = resolveGatewayOptions(options);
  const log: Logger = pino({ level: opts.logLevel, base: { node: opts.nodeId } });
  const ownBroker = !opts.broker;
  const broker: Broker =
    opts.broker ??
    (usesRedisBroker(opts)
      ? new RedisBroker({
          url: opts.redisUrl,
          clusterNodes: opts.redisClusterNodes,
          sentinels: opts.redisSentinels,
          sentinelName: opts.redisSentinelName,
          prefix: opts.redisPrefix,
          historySize: opts.historySize,
          historyTtlMs: opts.historyTtlMs,
          onWarning: (msg, err) => log.warn({ err }, msg),
        })
      : new MemoryBroker({ historySize: opts.historySize, historyTtlMs: opts.historyTtlMs }));
  try {
    await broker.ready();
  } catch (err) {
    if (ownBroker) await broker.close().catch(() => {});
    throw new Error(`cannot reach the broker (${opts.redisUrl ? redactUrl(opts.redisUrl) : opts.redisClusterNodes?.length ? 'cluster' : 'sentinels'}): ${(err as Error).message}`);
  }

  const metrics = new GatewayMetrics(opts.nodeId, true);
  const registry = new ConnectionRegistry();
  let draining = false;
  let brokerUp = true;
  let lastDeliveryFailureLog = 0;
  const load = new LoadFactor(opts.load, opts.loadInflate, {
    connections: () => registry.size,
    outboundBuffered: () => registry.bufferedBytes(),
  });
  const ctx: GatewayContext = {
    opts,
    broker,
    fanout: new TopicFanout(broker, (err, pub) => {
      metrics.deliveryFailures.inc();
      // At most one log line per second: a failure that hits every socket would otherwise flood the log.
      const now = Date.now();
      if (now - lastDeliveryFailureLog < 1000) return;
      lastDeliveryFailureLog = now;
      log.error({ err, topic: pub.topic, event: pub.event, offset: pub.offset }, 'a socket failed to take an event (the others still got it)');
    }),
    router: new ServiceRouter(broker, { timeoutMs: opts.upstreamTimeoutMs, maxResponseBytes: opts.maxUpstreamResponseBytes, nodeId: opts.nodeId, cacheMs: opts.serviceCacheMs }),
    registry,
    metrics,
    policy: defaultTopicPolicy,
    load,
    log,
    isDraining: () => draining,
  };
  broker.onControl((m) => applyConnectionControl(ctx, m));
  broker.onStatus((s, err) => {
    brokerUp = s === 'up';
    metrics.brokerUp.set(brokerUp ? 1 : 0);
    if (brokerUp) log.info('broker reachable again');
    else log.error({ err }, 'broker unreachable: publishes fail with 503 until it is back');
  });

  const native = new NativeEndpoint(ctx);
  const app: FastifyInstance = Fastify({ loggerInstance: log.child({ api: 'public' }, { level: log.levelVal >= 40 ? log.level : 'warn' }) as FastifyBaseLogger });
  const legacy = new LegacyEndpoint(ctx);
  app.get('/healthz', async () => ({ ok: true, node: opts.nodeId }));
  app.get('/readyz', async (_req, reply) => {
    const l = load.current();
    const ready = !draining && brokerUp && l.loadFactor <= 1;
    return reply.code(ready ? 200 : 503).send({ ready, draining, brokerUp, loadFactor: l.loadFactor });
  });
  // `broker` lets the shim see nodes that cannot share topics (several nodes, one of them on the embedded broker).
  app.get('/load', async () => ({ node: opts.nodeId, broker: ctx.broker.kind, draining, connections: registry.size, ...load.current() }));
  app.get('/metrics', async (_req, reply) => {
    const l = load.current();
    metrics.loadFactor.set(l.loadFactor);
    for (const [k, v] of Object.entries(l.dimensions)) metrics.loadDimension.set({ dimension: k }, v);
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  legacy.attach(app.server);
  app.server.on('upgrade', (req, socket, head) => {
    if (native.handleUpgrade(req, socket, head)) return;
    if (legacy.ownsUpgrade(req)) return; // socket.io handles its own path
    socket.on('error', () => {});
    refuseUpgrade(socket, 404, 'notFound', 'WebSocket endpoints: /ws (native) and /socket.io/ (legacy)');
  });

  let privateApp: FastifyInstance | undefined;
  try {
    await app.listen({ port: opts.port, host: opts.host });
    privateApp = await buildPrivateApi(ctx);
    await privateApp.listen({ port: opts.privatePort, host: opts.privateHost });
  } catch (err) {
    // A node that failed to start leaves nothing behind: no listener, no Redis connection.
    await legacy.close().catch(() => {});
    await Promise.allSettled([app.close(), privateApp?.close()]);
    if (ownBroker) await broker.close().catch(() => {});
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const privatePort = (privateApp.server.address() as AddressInfo).port;
  const publicUrl = opts.publicUrl ?? describeListen(opts.host, port);
  const privateUrl = describeListen(opts.privateHost, privatePort);
  native.start();
  load.start();

  const startedAt = new Date().toISOString();
  const nodeInfo = (): NodeInfo => {
    const l = load.current();
    return {
      id: opts.nodeId,
      url: publicUrl,
      privateUrl,
      connections: registry.size,
      loadFactor: l.loadFactor,
      dimensions: l.dimensions,
      draining,
      startedAt,
      lastSeen: new Date().toISOString(),
    };
  };
  const announce = () => broker.announceNode(nodeInfo(), opts.nodeTtlMs).catch((err) => log.warn({ err }, 'node heartbeat failed'));
  await announce();
  const heartbeat = setInterval(announce, opts.nodeHeartbeatMs);
  heartbeat.unref();
  log.info({ publicUrl, privateUrl, broker: broker.kind }, 'gateway node listening');

  let closed = false;
  const gw: RunningGateway = {
    nodeId: opts.nodeId,
    publicUrl,
    privateUrl,
    port,
    privatePort,
    ctx,
    async drain(windowMs = opts.drainWindowMs) {
      if (draining) return;
      draining = true;
      metrics.draining.set(1);
      await announce();
      const conns = [...registry.all()];
      log.info({ connections: conns.length, windowMs }, 'draining: spreading reconnects over the window');
      // Each client is told at a random moment inside the first 90% of the window,
      // and asked to wait a little more (afterMs) so reconnects arrive smoothly.
      const spread = windowMs * 0.9;
      const timers = conns.map((c) =>
        setTimeout(() => c.disconnect('drain', Math.floor(Math.random() * Math.min(1000, windowMs / 10))), Math.random() * spread),
      );
      const deadline = Date.now() + windowMs;
      while (registry.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const t of timers) clearTimeout(t);
      for (const c of [...registry.all()]) c.disconnect('drain', 0);
      const hard = Date.now() + 2000;
      while (registry.size > 0 && Date.now() < hard) await new Promise((r) => setTimeout(r, 20));
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      load.stop();
      native.close();
      native.closeAll();
      await legacy.close();
      await broker.removeNode(opts.nodeId).catch(() => {});
      app.server.closeAllConnections?.();
      await Promise.allSettled([app.close(), privateApp.close()]);
      if (ownBroker) await broker.close();
    },
  };
  return gw;
}
