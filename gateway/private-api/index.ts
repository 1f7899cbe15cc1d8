/**
 * The private API (internal callers only): bearer service-token auth, one
 * plugin per resource, JSON schemas on every route, one error format.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.ts';
import { connectionsPlugin } from './connections.ts';
import { installErrorHandler } from './errors.ts';
import { nodesPlugin } from './nodes.ts';
import { proxyPlugin } from './proxy.ts';
import { publishPlugin } from './publish.ts';
import { servicesPlugin } from './services.ts';

function tokenMatches(expected: Buffer, header: string | undefined): boolean {
  if (!header || !/^bearer /i.test(header)) return false;
  const got = Buffer.from(header.slice(7).trim());
  return got.length === expected.length && timingSafeEqual(got, expected);
}

export async function buildPrivateApi(ctx: GatewayContext): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: ctx.log.child({ api: 'private' }, { level: ctx.log.levelVal >= 40 ? ctx.log.level : 'warn' }) as FastifyBaseLogger, bodyLimit: 1024 * 1024,
    // Unknown fields are refused (400), not silently dropped: a caller's typo must not pass.
    ajv: { customOptions: { removeAdditional: false } },
  });
  installErrorHandler(app);
  const expected = Buffer.from(ctx.opts.serviceToken);
  app.get('/healthz', async () => ({ ok: true }));
  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/healthz') return;
    if (!tokenMatches(expected, req.headers.authorization)) {
      return reply.code(401).send({ error: { code: 'unauthorized', message: 'Authorization: Bearer <BIFROST_SERVICE_TOKEN> is required' } });
    }
  });
  await app.register(publishPlugin, { ctx });
  await app.register(servicesPlugin, { ctx });
  await app.register(proxyPlugin, { ctx });
  await app.register(connectionsPlugin, { ctx });
  await app.register(nodesPlugin, { ctx });
  return app;
}
