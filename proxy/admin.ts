/**
 * The shim's admin API (Fastify; binds 127.0.0.1 by default):
 *
 * | route | auth | does |
 * | --- | --- | --- |
 * | `GET /api/rollout` | – | percent, bucket-by, decisions by route, live connections per backend and node, decisions and upgrade outcomes per backend over the last minutes (`recent`), the Sync URL |
 * | `PUT /api/rollout` `{percent, bucketBy?}` | bearer | flags-file mode: writes the flag (atomic), applied at once |
 * | `POST /api/drain` `{scope?, backend?, node?}` | bearer | closes connections at the rebalance rate so they reconnect to their (new) backend |
 * | `GET /metrics` | – | Prometheus text (`bifrost_shim_*`) |
 * | `GET /dashboard` … | – | the live dashboard (`proxy/dashboard/plugin.ts`) |
 * | `GET /healthz` | – | alive (liveness: the process answers) |
 * | `GET /readyz` | – | ready: 200 once the flag source has loaded flags; 503 while it has not (not yet, or failed: e.g. an invalid `LD_SDK_KEY`), with the reason |
 *
 * Write calls need `Authorization: Bearer <admin token>`. Every error has one
 * shape: `{"error": {"code": "...", "message": "..."}}` with the HTTP status.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { FlagsFileError, writeRollout, type BucketBy } from './flags-file.ts';
import type { FlagSource } from './flag-source.ts';
import { flagSourceView } from './flag-source-view.ts';
import type { ConnectionRegistry, DrainRequest, Rebalancer } from './connections.ts';
import type { BifrostNodePool } from './bifrost-nodes.ts';
import type { ShimMetrics } from './metrics.ts';
import type { DecisionStats } from './decision-stats.ts';
import type { UpgradeStats } from './upgrade-stats.ts';
import { dashboardPlugin } from './dashboard/plugin.ts';

export interface AdminDeps {
  log: Logger;
  adminToken: string;
  flags: FlagSource;
  flagsFile: string | undefined;
  /** Makes the flag source apply the file now (local mode). */
  reloadFlags: () => Promise<void>;
  registry: ConnectionRegistry;
  rebalancer: Rebalancer;
  pool: BifrostNodePool;
  metrics: ShimMetrics;
  decisions: DecisionStats;
  upgrades: UpgradeStats;
  /** Where the shim sends Sync traffic (shown so the CLI can find Sync's metrics). */
  syncUrl: string;
  mode: 'proxied' | 'direct';
  pollingSessions: () => number;
}

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
  required: ['error'],
} as const;

/** Whether flags were ever loaded (`ready`), and why not (`initializing`: still trying; `failed`: the SDK gave up). */
const flagSourceSchema = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: ['initializing', 'ready', 'failed'] },
    ready: { type: 'boolean' },
    error: { type: ['string', 'null'] },
    since: { type: 'string' },
  },
} as const;

const okFailedSchema = { type: 'object', properties: { ok: { type: 'number' }, failed: { type: 'number' } } } as const;

const rolloutSchema = {
  type: 'object',
  properties: {
    source: { type: 'string', enum: ['file', 'launchdarkly'] },
    flagsFile: { type: ['string', 'null'] },
    mode: { type: 'string' },
    percent: { type: ['number', 'null'] },
    bucketBy: { type: ['string', 'null'] },
    version: { type: ['number', 'null'] },
    decisions: {
      type: 'object',
      properties: { sync: { type: 'number' }, bifrost: { type: 'number' }, byReason: { type: 'object', additionalProperties: { type: 'number' } } },
    },
    connections: {
      type: 'object',
      properties: {
        sync: { type: 'number' },
        bifrost: { type: 'number' },
        websocket: { type: 'number' },
        polling: { type: 'number' },
        nodes: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              url: { type: 'string' },
              connections: { type: 'number' },
              loadFactor: { type: ['number', 'null'] },
              draining: { type: 'boolean' },
              reachable: { type: ['boolean', 'null'] },
              broker: { type: ['string', 'null'] },
              sharesTopics: { type: 'boolean' },
            },
          },
        },
      },
    },
    drain: { type: 'object', properties: { policy: { type: 'string' }, rate: { type: 'number' }, queued: { type: 'number' }, closed: { type: 'number' } } },
    flagReloads: { type: 'object', properties: { ok: { type: 'number' }, errors: { type: 'number' }, lastError: { type: ['string', 'null'] } } },
    flagSource: flagSourceSchema,
    recent: {
      type: 'object',
      properties: {
        windowSeconds: { type: 'number' },
        decisions: { type: 'object', properties: { sync: { type: 'number' }, bifrost: { type: 'number' } } },
        upgrades: { type: 'object', properties: { sync: okFailedSchema, bifrost: okFailedSchema } },
      },
    },
    syncUrl: { type: 'string' },
  },
} as const;

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function bearerOk(req: FastifyRequest, token: string): boolean {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
  const given = Buffer.from(h.slice(7).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

function rolloutPlugin(deps: AdminDeps): FastifyPluginAsync {
  return async (app) => {
    const snapshot = () => {
      const r = deps.flags.rollout();
      const counts = deps.registry.counts();
      const stats = deps.flags.stats();
      const isolated = deps.pool.isolatedNodes();
      return {
        source: deps.flags.mode,
        flagsFile: deps.flags.mode === 'file' ? (deps.flagsFile ?? null) : null,
        mode: deps.mode,
        percent: r ? r.percent : null,
        bucketBy: r ? r.bucketBy : null,
        version: r ? r.version : null,
        decisions: deps.decisions.snapshot(),
        connections: {
          sync: counts.sync,
          bifrost: counts.bifrost,
          websocket: counts.websocket,
          polling: counts.polling,
          nodes: deps.pool.nodes.map((n) => ({
            id: n.id,
            url: n.url,
            connections: counts.nodes[n.id] ?? 0,
            loadFactor: n.loadFactor ?? null,
            draining: n.draining,
            reachable: n.reachable ?? null,
            broker: n.broker ?? null,
            // false: an embedded-broker node next to others; its users miss the others' events.
            sharesTopics: !isolated.includes(n),
          })),
        },
        drain: { policy: deps.rebalancer.policy, rate: deps.rebalancer.rate, queued: deps.rebalancer.queued, closed: deps.rebalancer.closedCount },
        flagReloads: { ok: stats.reloads, errors: stats.reloadErrors, lastError: stats.lastReloadError ?? null },
        flagSource: flagSourceView(deps.flags),
        recent: { windowSeconds: deps.decisions.recent.windowSeconds, decisions: deps.decisions.recentSnapshot(), upgrades: deps.upgrades.recentSnapshot() },
        syncUrl: deps.syncUrl,
      };
    };

    app.get('/api/rollout', { schema: { response: { 200: rolloutSchema } } }, async () => snapshot());

    app.put<{ Body: { percent: number; bucketBy?: BucketBy } }>(
      '/api/rollout',
      {
        preHandler: async (req) => {
          if (!bearerOk(req, deps.adminToken)) throw new HttpError(401, 'unauthorized', 'missing or wrong bearer token (send Authorization: Bearer $BIFROST_ADMIN_TOKEN)');
        },
        schema: {
          body: {
            type: 'object',
            properties: { percent: { type: 'number', minimum: 0, maximum: 100 }, bucketBy: { type: 'string', enum: ['user', 'team'] } },
            required: ['percent'],
            additionalProperties: false,
          },
          response: { 200: rolloutSchema, '4xx': errorSchema },
        },
      },
      async (req) => {
        if (deps.flags.mode !== 'file' || !deps.flagsFile) {
          throw new HttpError(409, 'conflict', 'flags come from live LaunchDarkly (LD_SDK_KEY): change the flag there, e.g. with `bifrost rollout set` and LD_API_TOKEN');
        }
        const bucketBy = req.body.bucketBy ?? deps.flags.rollout()?.bucketBy ?? 'user';
        try {
          await writeRollout(deps.flagsFile, { percent: req.body.percent, bucketBy });
        } catch (err) {
          if (err instanceof FlagsFileError) throw new HttpError(400, 'badRequest', err.message);
          throw err;
        }
        await deps.reloadFlags();
        deps.log.info({ percent: req.body.percent, bucketBy }, 'rollout changed through the admin API');
        return snapshot();
      },
    );
  };
}

function drainPlugin(deps: AdminDeps): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: DrainRequest | undefined }>(
      '/api/drain',
      {
        preHandler: async (req) => {
          if (!bearerOk(req, deps.adminToken)) throw new HttpError(401, 'unauthorized', 'missing or wrong bearer token (send Authorization: Bearer $BIFROST_ADMIN_TOKEN)');
        },
        schema: {
          body: {
            type: ['object', 'null'],
            properties: {
              scope: { type: 'string', enum: ['changed', 'all'] },
              backend: { type: 'string', enum: ['sync', 'bifrost'] },
              node: { type: 'string', minLength: 1 },
            },
            additionalProperties: false,
          },
          response: {
            202: { type: 'object', properties: { queued: { type: 'number' }, rate: { type: 'number' }, scope: { type: 'string' } } },
            '4xx': errorSchema,
          },
        },
      },
      async (req, reply) => {
        const body = req.body ?? {};
        // A node discovery has dropped (a pod gone from DNS but still running) may still hold sockets through
        // this shim: its id stays drainable while any of them is live.
        let node: string | undefined;
        if (body.node) {
          node = deps.pool.byId(body.node)?.id ?? (deps.registry.all().some((c) => c.node === body.node) ? body.node : undefined);
          if (!node) {
            const known = deps.pool.nodes.map((n) => n.id);
            throw new HttpError(400, 'badRequest', `unknown Bifrost node "${body.node}": neither a node of the pool (${known.length ? known.join(', ') : 'none'}) nor one this shim holds connections to`);
          }
        }
        const queued = await deps.rebalancer.enqueue({ ...body, node }, 'admin');
        reply.code(202);
        return { queued, rate: deps.rebalancer.rate, scope: body.scope ?? 'changed' };
      },
    );
  };
}

function opsPlugin(deps: AdminDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/metrics', async (_req, reply) => {
      reply.header('content-type', deps.metrics.registry.contentType);
      return deps.metrics.registry.metrics();
    });
    // Liveness: the process answers. Never depends on the flags (a restart would not fix LaunchDarkly).
    app.get('/healthz', { schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({ ok: true }));
    // Readiness: the flags have loaded. Until then every user goes to Sync (the rollout is frozen at 0%),
    // which must not look like a healthy replica.
    app.get(
      '/readyz',
      { schema: { response: { 200: { type: 'object', properties: { ready: { type: 'boolean' }, flagSource: flagSourceSchema } }, 503: errorSchema } } },
      async (_req, reply) => {
        const view = flagSourceView(deps.flags);
        if (view.ready) return { ready: true, flagSource: view };
        const source = deps.flags.mode === 'launchdarkly' ? 'LaunchDarkly' : 'the flags file';
        reply.code(503);
        return {
          error: {
            code: 'unavailable',
            message: `flags from ${source} not loaded (${view.state}${view.error ? `: ${view.error}` : ''}); every user is routed to Sync`,
          },
        };
      },
    );
  };
}

/** Builds the admin Fastify app (not listening yet). */
export async function buildAdminApp(deps: AdminDeps) {
  const app = Fastify({
    // Request lines are info: the admin logger only passes warnings and errors.
    loggerInstance: deps.log.child({ component: 'admin' }, { level: deps.log.isLevelEnabled('warn') ? 'warn' : deps.log.level }),
    ajv: { customOptions: { coerceTypes: false, allErrors: false } },
  });
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '' || body === undefined) return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new HttpError(400, 'badRequest', 'request body is not valid JSON'), undefined);
    }
  });
  app.setErrorHandler((err: FastifyError | HttpError, _req, reply) => {
    if (err instanceof HttpError) {
      if (err.statusCode === 401) reply.header('www-authenticate', 'Bearer');
      return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message } });
    }
    if ((err as FastifyError).validation) {
      return reply.code(400).send({ error: { code: 'badRequest', message: err.message } });
    }
    const status = (err as FastifyError).statusCode ?? 500;
    if (status >= 500) deps.log.error({ err }, 'admin API error');
    return reply.code(status).send({ error: { code: status >= 500 ? 'serverError' : 'badRequest', message: err.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'notFound', message: `no route ${req.method} ${req.url}` } });
  });
  await app.register(rolloutPlugin(deps));
  await app.register(drainPlugin(deps));
  await app.register(opsPlugin(deps));
  await app.register(dashboardPlugin(deps));
  return app;
}
