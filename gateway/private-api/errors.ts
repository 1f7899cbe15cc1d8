/** One error format for every private API answer: `{"error": {"code", "message"}}`. */
import type { FastifyError, FastifyInstance } from 'fastify';
import { BrokerUnavailableError } from '../broker.ts';
import { GatewayError } from '../errors.ts';

export const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
  required: ['error'],
} as const;

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof GatewayError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    if (err instanceof BrokerUnavailableError) return reply.code(503).send({ error: { code: 'unavailable', message: err.message } });
    if (err.validation) return reply.code(400).send({ error: { code: 'badRequest', message: err.message } });
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ error: { code: err.statusCode === 413 ? 'payloadTooLarge' : 'badRequest', message: err.message } });
    }
    req.log.error({ err }, 'private API error');
    return reply.code(500).send({ error: { code: 'serverError', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'notFound', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));
}
