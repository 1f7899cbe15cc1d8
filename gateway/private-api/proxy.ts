/** POST /v1/proxy: the HTTP twin of a native `request` frame, for callers without a socket. */
import type { FastifyPluginAsync } from 'fastify';
import type { GatewayContext } from '../context.ts';
import { forwardClientRequest } from '../client-request.ts';
import { GatewayError } from '../errors.ts';
import { verifyAccessToken } from '../token.ts';
import { errorSchema } from './errors.ts';

export const proxyPlugin: FastifyPluginAsync<{ ctx: GatewayContext }> = async (app, { ctx }) => {
  app.post<{ Body: { service: string; method: string; path: string; query?: Record<string, string>; body?: unknown } }>(
    '/v1/proxy',
    {
      schema: {
        body: {
          type: 'object',
          required: ['service', 'method', 'path'],
          additionalProperties: false,
          properties: {
            service: { type: 'string', minLength: 1, maxLength: 100 },
            method: { type: 'string', pattern: '^(GET|POST|PUT|PATCH|DELETE|get|post|put|patch|delete)$' },
            path: { type: 'string', pattern: '^/', maxLength: 2048 },
            query: { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] } },
            body: {},
          },
        },
        response: {
          200: { type: 'object', properties: { status: { type: 'integer' }, headers: { type: 'object', additionalProperties: { type: 'string' } }, body: {} } },
          '4xx': errorSchema,
          '5xx': errorSchema,
        },
      },
    },
    async (req) => {
      const token = req.headers['x-access-token'];
      if (typeof token !== 'string' || !token) throw new GatewayError('unauthorized', 'x-access-token header (the end user\'s access token) is required');
      let claims;
      try {
        claims = await verifyAccessToken(ctx.opts.tokenSecret, token);
      } catch (err) {
        throw new GatewayError('unauthorized', (err as Error).message);
      }
      const res = await forwardClientRequest(ctx, 'http', { ...req.body, token, claims });
      return { status: res.status, headers: res.headers, body: res.body };
    },
  );
};
