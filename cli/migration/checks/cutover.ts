/**
 * `cutover`: the squad's requests no longer go to the legacy `sync` service.
 * For every prefix of the manifest, the longest matching prefix in Bifrost's
 * routing table (`GET /v1/services`) belongs to the squad's service, and that
 * service points at the manifest's upstream.
 */
import { brief, httpCall, joinUrl } from '../http-call.ts';
import { paramsSchema, type StepCheck } from '../step-check.ts';
import { normalizeUpstream } from './register-service.ts';

interface RoutedService {
  name: string;
  upstream: string;
  prefixes: string[];
}

/** Same rule as the gateway: `/` matches everything, `/a` matches `/a` and `/a/…`. */
export function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  const p = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return path === p || path.startsWith(p + '/');
}

/** The service owning a path: the one with the longest matching prefix. */
export function owningService(services: RoutedService[], path: string): RoutedService | undefined {
  let best: RoutedService | undefined;
  let bestLen = -1;
  for (const s of services) {
    for (const p of s.prefixes) {
      if (prefixMatches(p, path) && p.length > bestLen) {
        best = s;
        bestLen = p.length;
      }
    }
  }
  return best;
}

export const cutoverCheck: StepCheck = {
  type: 'cutover',
  manual: false,
  describes: "the squad's prefixes route to its own service, no longer to sync",
  paramsSchema: paramsSchema({
    legacyService: { type: 'string', expected: 'the name of the legacy catch-all service' },
  }),
  defaults: { timeoutMs: 5000, legacyService: 'sync' },
  async run(ctx) {
    const legacy = ctx.params.legacyService as string;
    const res = await httpCall(joinUrl(ctx.stack.privateUrl, '/v1/services'), {
      headers: { authorization: `Bearer ${ctx.stack.serviceToken}` },
      timeoutMs: ctx.params.timeoutMs as number,
    });
    const list = Array.isArray(res.body) ? res.body : (res.body as { services?: unknown } | null)?.services;
    if (res.status !== 200 || !Array.isArray(list)) {
      return { ok: false, summary: `GET /v1/services answered ${res.status} ${brief(res.body)}: expected {services: [...]}`, output: [] };
    }
    const services = list as RoutedService[];
    const legacyDef = services.find((s) => s.name === legacy);
    const output: string[] = [];
    const failures: string[] = [];
    for (const s of ctx.squad.services) {
      const def = services.find((x) => x.name === s.name);
      if (!def) {
        failures.push(`${s.name} is not registered`);
        output.push(`✗ ${s.name}: not in the routing table`);
        continue;
      }
      if (normalizeUpstream(def.upstream) !== normalizeUpstream(s.upstream)) {
        failures.push(`${s.name} points at ${def.upstream}, not ${s.upstream}`);
        output.push(`✗ ${s.name}: upstream ${def.upstream}, the manifest says ${s.upstream}`);
      }
      for (const prefix of s.prefixes) {
        const owner = owningService(services, prefix);
        if (owner?.name === s.name) output.push(`✓ ${prefix} → ${s.name} (${def.upstream})`);
        else {
          failures.push(`${prefix} still goes to ${owner?.name ?? 'no service'}`);
          output.push(`✗ ${prefix} → ${owner?.name ?? 'no service'}${owner?.name === legacy ? ' (the legacy service)' : ''}`);
        }
      }
      if (legacyDef && normalizeUpstream(legacyDef.upstream) === normalizeUpstream(def.upstream)) {
        output.push(`note: ${s.name} is served by the same process as "${legacy}" (${def.upstream}): fine for the reference app, a real squad points at its own service`);
      }
    }
    return {
      ok: failures.length === 0,
      summary: failures.length === 0 ? `every prefix routes to the squad's service, none to ${legacy}` : failures.join('; '),
      output,
    };
  },
};
