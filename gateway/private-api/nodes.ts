/** GET /v1/nodes: the live gateway nodes from the registry. */
import type { FastifyPluginAsync } from 'fastify';
import type { GatewayContext } from '../context.ts';

export const nodesPlugin: FastifyPluginAsync<{ ctx: GatewayContext }> = async (app, { ctx }) => {
  app.get('/v1/nodes', async () => ({ nodes: await ctx.broker.listNodes() }));
};
