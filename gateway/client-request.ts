/**
 * A client request (native `request` frame, legacy virtual request or the
 * private API's /v1/proxy) sent to its service, measured, with the
 * response's subscribe/unsubscribe headers applied to the requesting socket.
 */
import { randomUUID } from 'node:crypto';
import type { ClientConnection, Protocol } from './client-connection.ts';
import type { GatewayContext } from './context.ts';
import { BrokerUnavailableError } from './broker.ts';
import { GatewayError } from './errors.ts';
import type { ProxyRequest, ProxyResponse } from './service-router.ts';
import { isValidTopic } from './native-protocol.ts';

export async function forwardClientRequest(
  ctx: GatewayContext,
  protocol: Protocol | 'http',
  req: Omit<ProxyRequest, 'requestId'>,
  conn?: ClientConnection,
): Promise<ProxyResponse> {
  const started = performance.now();
  const requestId = randomUUID();
  // Metric label: a registered service's name once routing found it, else
  // `unrouted` (never the client's own `service` text, which is unbounded).
  let service = 'unrouted';
  try {
    const res = await ctx.router.forward({ ...req, requestId });
    service = res.service;
    ctx.metrics.requests.inc({ protocol, service, status: String(res.status) });
    if (conn) {
      // Made before the response goes out (so no event published after it is
      // missed), all at once: the broker fails a subscribe at once while Redis is
      // unreachable and bounds it by its command timeout otherwise, so the
      // response is never held for long; a failed one is logged, not fatal.
      await Promise.all(
        res.subscribe.filter(isValidTopic).map((t) => conn.serverSubscribe(t).catch((err) => ctx.log.warn({ err, topic: t, conn: conn.id }, 'subscribe from x-bifrost-subscribe failed'))),
      );
      for (const t of res.unsubscribe) if (isValidTopic(t)) await conn.serverUnsubscribe(t);
    }
    return res;
  } catch (err) {
    const code = err instanceof GatewayError ? err.code : 'serverError';
    if (err instanceof GatewayError && err.service) service = err.service;
    ctx.metrics.requests.inc({ protocol, service, status: code });
    if (err instanceof BrokerUnavailableError) {
      // The routing table could not be read: Redis is unreachable, not a bug.
      throw new GatewayError('serverError', `request failed: broker unavailable (${err.message})`, 503);
    }
    if (!(err instanceof GatewayError)) {
      ctx.log.error({ err, requestId }, 'client request failed');
      throw new GatewayError('serverError', `request failed: ${(err as Error).message}`);
    }
    throw err;
  } finally {
    ctx.metrics.requestDuration.observe({ protocol, service }, (performance.now() - started) / 1000);
  }
}
