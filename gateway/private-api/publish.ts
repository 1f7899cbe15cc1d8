/** POST /v1/publish and GET /v1/topics/:topic/history. */
import type { FastifyPluginAsync } from 'fastify';
import type { GatewayContext } from '../context.ts';
import { errorSchema } from './errors.ts';
import { GatewayError } from '../errors.ts';
import { LEGACY_RESERVED_EVENTS } from '../legacy-connection.ts';
import { TOPIC_PATTERN } from '../native-protocol.ts';

const TOPIC = { type: 'string', pattern: TOPIC_PATTERN } as const;
const position = { type: 'object', properties: { offset: { type: 'string' }, epoch: { type: 'string' } }, required: ['offset', 'epoch'] } as const;

export const publishPlugin: FastifyPluginAsync<{ ctx: GatewayContext }> = async (app, { ctx }) => {
  app.post<{ Body: { topic: string; event: string; data?: unknown; idempotencyKey?: string } }>(
    '/v1/publish',
    {
      schema: {
        body: {
          type: 'object',
          required: ['topic', 'event'],
          additionalProperties: false,
          properties: {
            topic: TOPIC,
            event: { type: 'string', pattern: '^[^\\n\\r]{1,100}$' },
            data: {},
            idempotencyKey: { type: 'string', minLength: 1, maxLength: 200 },
          },
        },
        response: { 200: position, '4xx': errorSchema, '5xx': errorSchema },
      },
    },
    async (req) => {
      const { topic, event, data, idempotencyKey } = req.body;
      if (LEGACY_RESERVED_EVENTS.has(event)) {
        throw new GatewayError('badRequest', `event name "${event}" is reserved by socket.io and cannot reach legacy clients; reserved: ${[...LEGACY_RESERVED_EVENTS].join(', ')}`);
      }
      try {
        const pos = await ctx.broker.publish({ topic, event, dataJson: JSON.stringify(data ?? null), idempotencyKey });
        ctx.metrics.publishes.inc({ outcome: 'ok' });
        return pos;
      } catch (err) {
        ctx.metrics.publishes.inc({ outcome: 'error' });
        throw err;
      }
    },
  );

  app.get<{ Params: { topic: string }; Querystring: { since?: string; epoch?: string; limit?: number } }>(
    '/v1/topics/:topic/history',
    {
      schema: {
        params: { type: 'object', properties: { topic: TOPIC }, required: ['topic'] },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: { type: 'string', pattern: '^\\d+(-\\d+)?$' },
            epoch: { type: 'string', maxLength: 64 },
            limit: { type: 'integer', minimum: 1, maximum: 10000 },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              topic: { type: 'string' },
              position,
              recovered: { type: 'boolean' },
              events: {
                type: 'array',
                items: { type: 'object', properties: { offset: { type: 'string' }, event: { type: 'string' }, data: {} } },
              },
            },
          },
          '4xx': errorSchema,
          '5xx': errorSchema,
        },
      },
    },
    async (req) => {
      const { since, limit } = req.query;
      let pos;
      if (since) {
        // Without an epoch the current one is assumed (the caller only cares about offsets).
        const epoch = req.query.epoch ?? (await ctx.broker.history(req.params.topic, undefined, 1)).position.epoch;
        pos = { offset: since, epoch };
      }
      const h = await ctx.broker.history(req.params.topic, pos, limit ?? ctx.opts.historySize);
      return {
        topic: req.params.topic,
        position: h.position,
        recovered: h.recoverable,
        events: h.publications.map((p) => ({ offset: p.offset, event: p.event, data: JSON.parse(p.dataJson) })),
      };
    },
  );
};
