/**
 * `inventory`: the manifest is complete and valid. Validation already ran when
 * the catalog loaded; this check adds what a squad must have written down
 * before the live checks can mean anything (a probe, routes for parity).
 */
import { paramsSchema, type StepCheck } from '../step-check.ts';

export const inventoryCheck: StepCheck = {
  type: 'inventory',
  manual: false,
  describes: 'the manifest lists owners, services, topics, events, routes for parity and a probe',
  paramsSchema: paramsSchema({
    minRoutes: { type: 'integer', minimum: 0, expected: 'the least number of routes for parity' },
    requireProbe: { type: 'boolean' },
  }),
  defaults: { minRoutes: 1, requireProbe: true },
  async run(ctx) {
    const m = ctx.squad;
    const minRoutes = ctx.params.minRoutes as number;
    const items: Array<[boolean, string]> = [
      [m.owners.length > 0, `owners: ${m.owners.map((o) => o.name).join(', ')}`],
      [true, `target date: ${m.targetDate}`],
      [m.services.length > 0, `services: ${m.services.map((s) => `${s.name} → ${s.upstream} (${s.prefixes.join(', ')})`).join('; ')}`],
      [m.topics.length > 0, `topics: ${m.topics.join(', ')}`],
      [m.events.length > 0, `events: ${m.events.join(', ')}`],
      [m.routes.length >= minRoutes, `routes for parity: ${m.routes.length} (at least ${minRoutes})`],
      [!ctx.params.requireProbe || m.probe !== undefined, m.probe ? `probe: update ${m.probe.update.method} ${m.probe.update.path}, expect "${m.probe.event}" on ${m.probe.topic}` : 'probe: missing'],
    ];
    const missing = items.filter(([ok]) => !ok).map(([, what]) => what);
    return {
      ok: missing.length === 0,
      summary: missing.length === 0 ? `manifest ${m.file} is complete` : `manifest ${m.file} is incomplete: ${missing.join('; ')}`,
      output: items.map(([ok, what]) => `${ok ? '✓' : '✗'} ${what}`),
    };
  },
};
