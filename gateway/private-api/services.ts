/** The routing table: PUT / GET / DELETE /v1/services[/:name]. Every node sees changes at once. */
import type { FastifyPluginAsync } from 'fastify';
import type { GatewayContext } from '../context.ts';
import { GatewayError } from '../errors.ts';
import { errorSchema } from './errors.ts';

const NAME = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$' } as const;
const service = {
  type: 'object',
  properties: { name: { type: 'string' }, upstream: { type: 'string' }, prefixes: { type: 'array', items: { type: 'string' } }, updatedAt: { type: 'string' } },
} as const;

export const servicesPlugin: FastifyPluginAsync<{ ctx: GatewayContext }> = async (app, { ctx }) => {
  const changed = async () => {
    ctx.router.invalidate();
    await ctx.broker.publishControl({ type: 'services-changed' });
  };

  app.put<{ Params: { name: string }; Body: { upstream: string; prefixes: string[] } }>(
    '/v1/services/:name',
    {
      schema: {
        params: { type: 'object', properties: { name: NAME }, required: ['name'] },
        body: {
          type: 'object',
          required: ['upstream', 'prefixes'],
          additionalProperties: false,
          properties: {
            upstream: { type: 'string', pattern: '^https?://[^\\s]+$', maxLength: 2048 },
            prefixes: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'string', pattern: '^/[^\\s?#]*$', maxLength: 512 } },
          },
        },
        response: { 200: service, '4xx': errorSchema, '5xx': errorSchema },
      },
    },
    async (req) => {
      try {
        new URL(req.body.upstream);
      } catch {
        throw new GatewayError('badRequest', `upstream "${req.body.upstream}" is not a valid URL`);
      }
      if (req.body.prefixes.some((p) => p.split('/').some((seg) => seg === '..' || seg === '.'))) {
        throw new GatewayError('badRequest', 'prefixes may not contain "." or ".." segments');
      }
      const stored = await ctx.broker.putService({ name: req.params.name, upstream: req.body.upstream, prefixes: req.body.prefixes });
      await changed();
      return stored;
    },
  );

  app.get('/v1/services', { schema: { response: { 200: { type: 'object', properties: { services: { type: 'array', items: service } } } } } }, async () => ({
    services: await ctx.broker.listServices(),
  }));

  app.get<{ Params: { name: string } }>(
    '/v1/services/:name',
    { schema: { params: { type: 'object', properties: { name: NAME }, required: ['name'] }, response: { 200: service, '4xx': errorSchema } } },
    async (req) => {
      const s = await ctx.broker.getService(req.params.name);
      if (!s) throw new GatewayError('invalidServiceError', `unknown service "${req.params.name}"`);
      return s;
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/services/:name',
    { schema: { params: { type: 'object', properties: { name: NAME }, required: ['name'] }, response: { 200: { type: 'object', properties: { deleted: { type: 'string' } } }, '4xx': errorSchema } } },
    async (req) => {
      if (!(await ctx.broker.deleteService(req.params.name))) throw new GatewayError('invalidServiceError', `unknown service "${req.params.name}"`);
      await changed();
      return { deleted: req.params.name };
    },
  );
};
