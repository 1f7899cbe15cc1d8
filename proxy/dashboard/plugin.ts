/**
 * The live migration dashboard, a Fastify plugin of the shim's admin API.
 *
 * | route | auth | does |
 * | --- | --- | --- |
 * | `GET /dashboard` (+ `/dashboard/dashboard.js`, `/dashboard/dashboard.css`) | – | the page and its two assets, served from `proxy/dashboard/assets/` (no CDN) |
 * | `GET /api/dashboard` | – | one snapshot (see `snapshot.ts`) plus the chart's history |
 * | `GET /api/dashboard/events` | – | server-sent events: `snapshot` on connect (with `history`), then one per sample (every 2 s) |
 * | `GET /api/rollout/preview?percent=&bucketBy=` | – | how many live connections a rollout change would move (`move-preview.ts`) |
 * | `POST /api/ramp/pause` · `/api/ramp/resume` · `/api/ramp/end` · `/api/ramp/finish` | bearer | steer the persisted ramp like `bifrost rollout pause|resume|rollback` do (end = rolling back to 0 %, finish = rolled back, once the shim routes by 0 %) |
 *
 * Reads are open like `GET /api/rollout` (the admin port binds 127.0.0.1 by
 * default); every write needs `Authorization: Bearer <admin token>`, the same
 * token as the admin API's own write routes, which the page calls for the
 * rollout percent (`PUT /api/rollout`) and drains (`POST /api/drain`).
 * Responses of the page carry a strict Content-Security-Policy (only this
 * origin's script, style and connections).
 */
import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { readRollout, writeRollout, type BucketBy } from '../flags-file.ts';
import { ownerMayStillWrite, watchForLateWrites } from '../../cli/rollout/late-write-watch.ts';
import type { RampLease } from '../../cli/rollout/ramp-state.ts';
import { previewMove } from './move-preview.ts';
import { RampControl, type RampAction } from './ramp-control.ts';
import type { RampStore } from '../../cli/rollout/ramp-store.ts';
import { DashboardSampler, type DashboardSources, type SamplerOptions } from './snapshot.ts';
import { SquadBoardReader, type SquadBoardOptions } from './squad-board.ts';

export interface DashboardDeps extends DashboardSources {
  adminToken: string;
  /** Makes the flag source apply the flags file now (local mode). */
  reloadFlags: () => Promise<void>;
}

export interface DashboardOptions extends SamplerOptions {
  /** Where the ramp's state lives; default `openRampStore()` (BIFROST_RAMP_FILE / REDIS_URL, as the CLI). */
  rampStore?: RampStore;
  /** Squad manifests, playbooks and state store; defaults from BIFROST_MIGRATIONS_DIR, BIFROST_PLAYBOOKS_DIR, BIFROST_STATE_FILE / REDIS_URL. */
  squads?: SquadBoardOptions;
  /** Open event streams allowed at once (default 32); more get 503. */
  maxStreams?: number;
}

const ASSETS = new URL('./assets/', import.meta.url);
const ASSET_TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
  required: ['error'],
} as const;

const rampActionSchema = {
  type: 'object',
  properties: {
    ok: { type: 'boolean' },
    changed: { type: 'boolean' },
    message: { type: 'string' },
    paused: { type: ['boolean', 'null'] },
    phase: { type: ['string', 'null'] },
  },
} as const;

const previewSchema = {
  type: 'object',
  properties: {
    kind: { type: 'string', enum: ['exact', 'estimate'] },
    fromPercent: { type: ['number', 'null'] },
    toPercent: { type: 'number' },
    bucketBy: { type: 'string' },
    live: { type: 'number' },
    movable: { type: 'number' },
    toBifrost: { type: 'number' },
    toSync: { type: 'number' },
    moving: { type: 'number' },
    drainPolicy: { type: 'string' },
    rate: { type: 'number' },
    summary: { type: 'string' },
  },
} as const;

function bearerOk(req: FastifyRequest, token: string): boolean {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
  const given = Buffer.from(h.slice(7).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  if (status === 401) reply.header('www-authenticate', 'Bearer');
  return reply.code(status).send({ error: { code, message } });
}

async function loadAssets(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of Object.keys(ASSET_TYPES)) out.set(name, await readFile(new URL(name, ASSETS), 'utf8'));
  return out;
}

/** The dashboard plugin; register it on the admin app: `app.register(dashboardPlugin(deps))`. */
export function dashboardPlugin(deps: DashboardDeps, opts: DashboardOptions = {}): FastifyPluginAsync {
  return async (app) => {
    const assets = await loadAssets();
    const ramp = new RampControl(opts.rampStore);
    const squads = new SquadBoardReader(opts.squads);
    const sampler = new DashboardSampler(deps, ramp, squads, opts);
    const streams = new Set<ServerResponse>();
    const maxStreams = opts.maxStreams ?? 32;
    await sampler.start();

    app.addHook('preClose', async () => {
      // Event streams never end on their own: end them so the server can close.
      for (const res of streams) res.destroy();
      streams.clear();
    });
    const watches = new Set<AbortController>();
    app.addHook('onClose', async () => {
      for (const w of watches) w.abort();
      await sampler.close();
      await ramp.close();
      await squads.close();
    });
    app.addHook('onSend', async (_req, reply, payload) => {
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'no-referrer');
      reply.header('cache-control', 'no-store');
      return payload;
    });

    const page = (name: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
      reply.header('content-type', ASSET_TYPES[name]!);
      if (name === 'index.html') {
        reply.header('content-security-policy', CSP);
        reply.header('x-frame-options', 'DENY');
      }
      return assets.get(name);
    };
    app.get('/dashboard', page('index.html'));
    app.get('/dashboard/', async (_req, reply) => reply.redirect('/dashboard'));
    app.get('/dashboard/dashboard.js', page('dashboard.js'));
    app.get('/dashboard/dashboard.css', page('dashboard.css'));

    app.get('/api/dashboard', async () => ({ ...(await sampler.snapshot()), history: sampler.history() }));

    app.get('/api/dashboard/events', async (req, reply) => {
      if (streams.size >= maxStreams) return sendError(reply, 503, 'unavailable', `too many open dashboard streams (${maxStreams}); close a tab`);
      const first = { ...(await sampler.snapshot()), history: sampler.history() };
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      });
      const send = (data: unknown) => {
        if (!res.writableEnded && !res.destroyed) res.write(`event: snapshot\ndata: ${JSON.stringify(data)}\n\n`);
      };
      res.write(`retry: ${sampler.sampleIntervalMs}\n\n`);
      send(first);
      streams.add(res);
      const unsubscribe = sampler.subscribe(send);
      const done = () => {
        unsubscribe();
        streams.delete(res);
      };
      req.raw.once('close', done);
      res.once('close', done);
    });

    app.get<{ Querystring: { percent: string; bucketBy?: BucketBy } }>(
      '/api/rollout/preview',
      {
        schema: {
          querystring: {
            type: 'object',
            properties: { percent: { type: 'string', pattern: '^\\d{1,3}(\\.\\d{1,3})?$' }, bucketBy: { type: 'string', enum: ['user', 'team'] } },
            required: ['percent'],
          },
          response: { 200: previewSchema, '4xx': errorSchema },
        },
      },
      async (req, reply) => {
        const percent = Number(req.query.percent);
        if (!(percent >= 0 && percent <= 100)) return sendError(reply, 400, 'badRequest', `percent must be from 0 to 100, got ${req.query.percent}`);
        const current = deps.flags.rollout();
        return previewMove({
          connections: deps.registry.all(),
          current,
          currentPercent: current?.percent ?? null,
          toPercent: percent,
          ...(req.query.bucketBy ? { bucketBy: req.query.bucketBy } : {}),
          drainPolicy: deps.rebalancer.policy,
          rate: deps.rebalancer.rate,
        });
      },
    );

    /** The ended ramp's process may still land a write after the page's 0 %: undo it, as `rollout rollback` does. */
    const watchLateWrites = (rampId: string, owner: RampLease | null | undefined) => {
      const flagsFile = deps.flagsFile;
      if (deps.flags.mode !== 'file' || !flagsFile || !ownerMayStillWrite(owner)) return;
      const abort = new AbortController();
      watches.add(abort);
      const log = deps.log.child({ component: 'dashboard', ramp: rampId });
      watchForLateWrites({
        rampId,
        owner,
        readRamp: () => ramp.read(),
        readPercent: async () => (await readRollout(flagsFile)).percent,
        writeZero: async () => {
          await writeRollout(flagsFile, { percent: 0, bucketBy: (await readRollout(flagsFile)).bucketBy });
          await deps.reloadFlags();
        },
        onLateWrite: (percent) => log.warn({ percent }, `the ramp's process wrote ${percent}% after the dashboard's rollback; writing 0% again`),
        signal: abort.signal,
      })
        .catch((err: unknown) => log.error({ err: (err as Error).message }, 'watching for a late ramp write after the rollback failed; check the rollout (`bifrost rollout status`)'))
        .finally(() => watches.delete(abort));
    };

    const rampRoute = (path: string, action: RampAction) =>
      app.post(
        path,
        {
          preHandler: async (req, reply) => {
            if (!bearerOk(req, deps.adminToken)) return sendError(reply, 401, 'unauthorized', 'missing or wrong bearer token (send Authorization: Bearer $BIFROST_ADMIN_TOKEN)');
          },
          schema: { response: { 200: rampActionSchema, '4xx': errorSchema } },
        },
        async (req, reply) => {
          const by = `dashboard (${req.ip})`;
          let r;
          try {
            r = await ramp.act(action, by);
          } catch (err) {
            return sendError(reply, 503, 'unavailable', `ramp state: ${String((err as Error).message).split('\n')[0]}`);
          }
          if (r.noRamp) return sendError(reply, 409, 'conflict', r.message);
          deps.log.info({ action, by, changed: r.changed }, 'ramp steered from the dashboard');
          if (action === 'end' && r.changed && r.ramp) watchLateWrites(r.ramp.id, r.endedOwner);
          void sampler.tick(true);
          return { ok: true, changed: r.changed, message: r.message, paused: r.ramp?.paused ?? null, phase: r.ramp?.phase ?? null };
        },
      );
    rampRoute('/api/ramp/pause', 'pause');
    rampRoute('/api/ramp/resume', 'resume');
    rampRoute('/api/ramp/end', 'end');
    rampRoute('/api/ramp/finish', 'finish');
  };
}
