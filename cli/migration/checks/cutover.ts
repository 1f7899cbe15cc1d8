/**
 * `cutover`: the squad's users and requests no longer go to Sync. The shim's
 * rollout (`GET /api/rollout` on the shim admin API) is at `minPercent`
 * (default 100: every user on Bifrost), and for every prefix of the manifest
 * the longest matching prefix in Bifrost's routing table (`GET /v1/services`)
 * belongs to the squad's service, which points at the manifest's upstream.
 * Registering the service alone is not a cutover: below 100 % some users still
 * reach the feature through Sync, and `decommission` depends on this step.
 */
import { brief, httpCall, joinUrl } from '../http-call.ts';
import { paramsSchema, type StepCheck } from '../step-check.ts';
import { normalizeUpstream } from './register-service.ts';
import { readShimRollout, replicaSpread } from './shim-rollout.ts';

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
  describes: "the rollout is at minPercent (100 %) and the squad's prefixes route to its own service, no longer to sync",
  paramsSchema: paramsSchema({
    legacyService: { type: 'string', expected: 'the name of the legacy catch-all service' },
    minPercent: { type: 'number', minimum: 0, maximum: 100, expected: 'the rollout percentage a cutover needs (0..100)' },
  }),
  defaults: { timeoutMs: 5000, legacyService: 'sync', minPercent: 100 },
  async run(ctx) {
    const legacy = ctx.params.legacyService as string;
    const minPercent = ctx.params.minPercent as number;
    const output: string[] = [];
    const failures: string[] = [];
    const rollout = await readShimRollout(ctx.stack, ctx.params.timeoutMs as number);
    const spread = typeof rollout === 'string' ? null : replicaSpread(rollout);
    if (spread) output.push(spread);
    if (typeof rollout === 'string') failures.push(rollout);
    else if (rollout.percent < minPercent) {
      failures.push(`rollout is at ${rollout.percent}%, cutover needs ${minPercent}%: ramp up first (\`bifrost rollout ramp --steps 25,50,100 --interval 30m\`), then check again`);
      output.push(`✗ rollout: ${rollout.percent}% on Bifrost (need ${minPercent}%)`);
    } else output.push(`✓ rollout: ${rollout.percent}% on Bifrost (need ${minPercent}%)`);
    const res = await httpCall(joinUrl(ctx.stack.privateUrl, '/v1/services'), {
      headers: { authorization: `Bearer ${ctx.stack.serviceToken}` },
      timeoutMs: ctx.params.timeoutMs as number,
    });
    const list = Array.isArray(res.body) ? res.body : (res.body as { services?: unknown } | null)?.services;
    if (res.status !== 200 || !Array.isArray(list)) {
      failures.push(`GET /v1/services answered ${res.status} ${brief(res.body)}: expected {services: [...]}`);
      return { ok: false, summary: failures.join('; '), output };
    }
    const services = list as RoutedService[];
    const legacyDef = services.find((s) => s.name === legacy);
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
      summary: failures.length === 0 ? `every user is on Bifrost and every prefix routes to the squad's service, none to ${legacy}` : failures.join('; '),
      output,
    };
  },
};
