/**
 * `register-service`: each of the squad's services is in Bifrost's routing
 * table (`GET /v1/services/:name` on the private API) with the manifest's
 * upstream and prefixes.
 */
import { brief, httpCall, joinUrl } from '../http-call.ts';
import type { ServiceSpec } from '../manifest.ts';
import { paramsSchema, type StepCheck } from '../step-check.ts';

/** The service definition in a private API answer (bare or wrapped in `{service}`). */
export function serviceOf(body: unknown): { name?: string; upstream?: string; prefixes?: string[] } | undefined {
  const b = body as { service?: unknown; upstream?: unknown } | null;
  if (b && typeof b === 'object' && typeof b.upstream === 'string') return b as ServiceSpec;
  if (b && typeof b.service === 'object' && b.service !== null) return b.service as ServiceSpec;
  return undefined;
}

export const normalizeUpstream = (u: string) => u.replace(/\/+$/, '');

export function registerCommand(privateUrl: string, s: ServiceSpec): string {
  return `curl -X PUT ${joinUrl(privateUrl, `/v1/services/${s.name}`)} -H "authorization: Bearer $BIFROST_SERVICE_TOKEN" -H 'content-type: application/json' -d '${JSON.stringify({ upstream: s.upstream, prefixes: s.prefixes })}'`;
}

export const registerServiceCheck: StepCheck = {
  type: 'register-service',
  manual: false,
  describes: "each service is in Bifrost's routing table with the manifest's upstream and prefixes",
  paramsSchema: paramsSchema({}),
  defaults: { timeoutMs: 5000 },
  async run(ctx) {
    const output: string[] = [];
    const failures: string[] = [];
    for (const s of ctx.squad.services) {
      ctx.progress(`GET /v1/services/${s.name}`);
      const res = await httpCall(joinUrl(ctx.stack.privateUrl, `/v1/services/${encodeURIComponent(s.name)}`), {
        headers: { authorization: `Bearer ${ctx.stack.serviceToken}` },
        timeoutMs: ctx.params.timeoutMs as number,
      });
      if (res.status === 404) {
        failures.push(`${s.name} is not registered`);
        output.push(`✗ ${s.name}: not in the routing table. Register it:`, `    ${registerCommand(ctx.stack.privateUrl, s)}`);
        continue;
      }
      const def = serviceOf(res.body);
      if (res.status !== 200 || !def) {
        failures.push(`${s.name}: private API answered ${res.status}`);
        output.push(`✗ ${s.name}: GET /v1/services/${s.name} answered ${res.status} ${brief(res.body)}`);
        continue;
      }
      const problems: string[] = [];
      if (normalizeUpstream(def.upstream ?? '') !== normalizeUpstream(s.upstream)) problems.push(`upstream is ${def.upstream}, manifest says ${s.upstream}`);
      const have = [...(def.prefixes ?? [])].sort();
      const want = [...s.prefixes].sort();
      if (JSON.stringify(have) !== JSON.stringify(want)) problems.push(`prefixes are [${have.join(', ')}], manifest says [${want.join(', ')}]`);
      if (problems.length) {
        failures.push(`${s.name}: ${problems.join('; ')}`);
        output.push(`✗ ${s.name}: ${problems.join('; ')}. Update it:`, `    ${registerCommand(ctx.stack.privateUrl, s)}`);
      } else output.push(`✓ ${s.name} → ${def.upstream} (${have.join(', ')})`);
    }
    return {
      ok: failures.length === 0,
      summary: failures.length === 0 ? `${ctx.squad.services.length} service(s) registered as the manifest says` : failures.join('; '),
      output,
    };
  },
};
