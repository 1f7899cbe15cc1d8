/**
 * Socket operations on behalf of services: POST /v1/connections/subscribe,
 * /unsubscribe and /disconnect, by user id or connection id, on every node.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ControlMessage } from '../broker.ts';
import type { GatewayContext } from '../context.ts';
import { GatewayError } from '../errors.ts';
import { errorSchema } from './errors.ts';
import { TOPIC_PATTERN } from '../native-protocol.ts';

const TOPIC = { type: 'string', pattern: TOPIC_PATTERN } as const;

/** Applies a control message to the sockets of this node. */
export function applyConnectionControl(ctx: GatewayContext, m: ControlMessage): void {
  if (m.type !== 'subscribe' && m.type !== 'unsubscribe' && m.type !== 'disconnect') return;
  for (const c of ctx.registry.find({ userId: m.userId, connectionId: m.connectionId })) {
    if (m.type === 'disconnect') c.disconnect(m.reconnect ? 'drain' : 'policy', 0);
    else
      for (const t of m.topics ?? []) {
        const p = m.type === 'subscribe' ? c.serverSubscribe(t) : c.serverUnsubscribe(t);
        p.catch((err) => ctx.log.warn({ err, conn: c.id, topic: t }, `${m.type} by service failed`));
      }
  }
}

export const connectionsPlugin: FastifyPluginAsync<{ ctx: GatewayContext }> = async (app, { ctx }) => {
  for (const op of ['subscribe', 'unsubscribe', 'disconnect'] as const) {
    app.post<{ Body: { userId?: string; connectionId?: string; topics?: string[]; reconnect?: boolean } }>(
      `/v1/connections/${op}`,
      {
        schema: {
          body: {
            type: 'object',
            additionalProperties: false,
            properties: {
              userId: { type: 'string', minLength: 1, maxLength: 200 },
              connectionId: { type: 'string', minLength: 1, maxLength: 100 },
              topics: { type: 'array', items: TOPIC, maxItems: 1000 },
              reconnect: { type: 'boolean' },
            },
          },
          response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } }, '4xx': errorSchema, '5xx': errorSchema },
        },
      },
      async (req) => {
        const { userId, connectionId, topics, reconnect } = req.body;
        if (!userId && !connectionId) throw new GatewayError('badRequest', 'give userId or connectionId');
        if (op !== 'disconnect' && (!topics || topics.length === 0)) throw new GatewayError('badRequest', `${op} needs a non-empty topics list`);
        await ctx.broker.publishControl({ type: op, userId, connectionId, topics, reconnect });
        return { ok: true };
      },
    );
  }
};
