/**
 * `route-parity`: every route of the manifest answers the same through Sync
 * directly and through Bifrost's `POST /v1/proxy` — same status, same body once
 * ids, timestamps and the route's `mask` fields are masked. Every route is sent
 * twice (Sync, then Bifrost), so a mutating route must be `safeToRepeat` or
 * `ownProbeRecord` (each side then acts on a fresh probe record, deleted after).
 */
import { brief, httpCall, joinUrl, resolveRequest, type HttpResult, type TemplateVars } from '../http-call.ts';
import { MUTATING_METHODS, type RequestSpec, type RouteSpec } from '../manifest.ts';
import { paramsSchema, type CheckContext, type StepCheck } from '../step-check.ts';
import { callSync, createProbeRecord, deleteProbeRecord, newVars, probeToken, withProbeRecord } from './probe-record.ts';

const MASKED = '<masked>';
const TIMESTAMP_KEY = /^(id|_id|createdAt|updatedAt|created_at|updated_at|.+At|.+_at)$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Replaces ids, timestamps (by key, or ISO-looking / UUID values) and the given
 * fields with a placeholder. A mask entry is a field name (matched anywhere)
 * or a dotted path from the root with array indices left out (`items.owner`).
 */
export function maskVolatile(value: unknown, masks: readonly string[] = [], path: string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v) => maskVolatile(v, masks, path));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = [...path, k];
      const masked = TIMESTAMP_KEY.test(k) || masks.includes(k) || masks.includes(p.join('.'));
      out[k] = masked ? MASKED : maskVolatile(v, masks, p);
    }
    return out;
  }
  if (typeof value === 'string' && (ISO_TIME.test(value) || UUID.test(value))) return MASKED;
  return value;
}

/** The first place two JSON values differ, as `path: a ≠ b`, or null when equal. */
export function firstDifference(a: unknown, b: unknown, path = '$'): string | null {
  if (a === b) return null;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: ${a.length} items ≠ ${b.length} items`;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of [...keys].sort()) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return `${path}: ${brief(JSON.stringify(a) ?? 'nothing', 60)} ≠ ${brief(JSON.stringify(b) ?? 'nothing', 60)}`;
}

/** Unwraps `/v1/proxy`'s `{status, headers, body}` envelope; a non-200 is Bifrost's own error. */
function viaBifrost(res: HttpResult): { status: number; body: unknown; bifrostError?: string } {
  const env = res.body as { status?: unknown; body?: unknown; code?: string; message?: string } | null;
  if (res.status === 200 && env && typeof env === 'object' && typeof env.status === 'number') return { status: env.status, body: env.body ?? null };
  return { status: res.status, body: res.body, bifrostError: `${env?.code ?? 'error'}: ${env?.message ?? brief(res.body)}` };
}

/**
 * Runs `call` with `{id}` = `vars.id`, or, for an `ownProbeRecord` route, on a
 * fresh probe record created for this one call and deleted after it.
 */
async function onRecord<T>(ctx: CheckContext, route: RouteSpec, vars: TemplateVars, token: string, timeoutMs: number, call: (req: RequestSpec) => Promise<T>): Promise<T> {
  if (!route.ownProbeRecord || !ctx.squad.probe) return call(resolveRequest(route, vars));
  const probe = ctx.squad.probe;
  const own = { ...vars, id: await createProbeRecord(ctx, probe, vars, token, timeoutMs) };
  try {
    return await call(resolveRequest(route, own));
  } finally {
    await deleteProbeRecord(ctx, probe, own, token, timeoutMs);
  }
}

async function compareRoute(ctx: CheckContext, route: RouteSpec, vars: TemplateVars, token: string, timeoutMs: number): Promise<string | null> {
  const service = route.service ?? ctx.squad.services[0]!.name;
  const direct = await onRecord(ctx, route, vars, token, timeoutMs, (req) => callSync(ctx.stack, req, token, timeoutMs));
  const proxied = viaBifrost(
    await onRecord(ctx, route, vars, token, timeoutMs, (req) =>
      httpCall(joinUrl(ctx.stack.privateUrl, '/v1/proxy'), {
        method: 'POST',
        headers: { authorization: `Bearer ${ctx.stack.serviceToken}`, 'x-access-token': token },
        body: { service, method: req.method, path: req.path, ...(req.query ? { query: req.query } : {}), ...(req.body !== undefined ? { body: req.body } : {}) },
        timeoutMs,
      }),
    ),
  );
  if (proxied.bifrostError) return `Bifrost refused the request (${proxied.status} ${proxied.bifrostError})`;
  if (direct.status !== proxied.status) return `status ${direct.status} on Sync ≠ ${proxied.status} through Bifrost`;
  const masks = [...((ctx.params.mask as string[] | undefined) ?? []), ...(route.mask ?? [])];
  return firstDifference(maskVolatile(direct.body, masks), maskVolatile(proxied.body, masks));
}

export const routeParityCheck: StepCheck = {
  type: 'route-parity',
  manual: false,
  describes: "every manifest route answers the same through Sync and through Bifrost's /v1/proxy",
  paramsSchema: paramsSchema({
    mask: { type: 'array', items: { type: 'string' }, expected: 'field names or dotted paths to ignore in every route' },
  }),
  defaults: { timeoutMs: 5000, mask: [] },
  async run(ctx) {
    const timeoutMs = ctx.params.timeoutMs as number;
    const usesId = JSON.stringify(ctx.squad.routes).includes('{id}');
    const body = async (vars: TemplateVars, token: string) => {
      const output: string[] = [];
      let failed = 0;
      for (const route of ctx.squad.routes) {
        const label = `${route.method} ${resolveRequest(route, vars).path}`;
        if (MUTATING_METHODS.has(route.method) && !route.safeToRepeat && !route.ownProbeRecord) {
          // The manifest validator refuses these; a check built in code says it too rather than send it twice.
          failed++;
          output.push(`✗ ${route.name} (${label}): not sent: a ${route.method} route needs safeToRepeat or ownProbeRecord (route-parity sends every route twice)`);
          continue;
        }
        ctx.progress(`comparing ${label}`);
        const diff = await compareRoute(ctx, route, vars, token, timeoutMs);
        if (diff) failed++;
        output.push(diff ? `✗ ${route.name} (${label}): ${diff}` : `✓ ${route.name} (${label})`);
      }
      const n = ctx.squad.routes.length;
      return {
        ok: failed === 0,
        summary: failed === 0 ? `${n} route(s) answer the same through Sync and Bifrost` : `${failed} of ${n} route(s) differ between Sync and Bifrost`,
        output,
      };
    };
    if (usesId && ctx.squad.probe) return withProbeRecord(ctx, timeoutMs, ({ vars, token }) => body(vars, token));
    return body(newVars(), await probeToken(ctx.stack, ctx.squad));
  },
};
