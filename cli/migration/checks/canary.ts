/**
 * `canary`: the rollout sends at least `minPercent` of users to Bifrost, and
 * Bifrost's error rate (from the shim's `/metrics`, over a `sampleSeconds`
 * window) stays under `maxErrorRate`, continuously for `forSeconds`. The time
 * is measured across runs: each healthy run keeps the start of the healthy
 * streak in the recorded result; an unhealthy run resets it.
 */
import { brief, httpCall, joinUrl } from '../http-call.ts';
import { parsePrometheusText, sumOf } from '../prometheus-text.ts';
import { paramsSchema, type StepCheck } from '../step-check.ts';

interface Counts {
  total: number;
  errors: number;
}

export const canaryCheck: StepCheck = {
  type: 'canary',
  manual: false,
  describes: 'rollout ≥ minPercent with the Bifrost error rate under maxErrorRate for forSeconds',
  paramsSchema: paramsSchema({
    minPercent: { type: 'number', minimum: 0, maximum: 100, expected: 'a percentage 0..100' },
    maxErrorRate: { type: 'number', minimum: 0, maximum: 1, expected: 'a ratio 0..1 (0.01 = 1%)' },
    forSeconds: { type: 'integer', minimum: 0, expected: 'seconds the canary must stay healthy' },
    sampleSeconds: { type: 'number', minimum: 0, maximum: 300, expected: 'seconds between the two metric samples' },
    minRequests: { type: 'integer', minimum: 0, expected: 'the least traffic in a sample for the error rate to count' },
    metric: { type: 'string', pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$', expected: 'a Prometheus counter name' },
    backendLabel: { type: 'string' },
    backend: { type: 'string' },
    outcomeLabel: { type: 'string' },
    okOutcomes: { type: 'array', items: { type: 'string' }, expected: 'outcome label values that are not errors' },
  }),
  defaults: {
    timeoutMs: 5000,
    minPercent: 5,
    maxErrorRate: 0.01,
    forSeconds: 600,
    sampleSeconds: 5,
    minRequests: 0,
    metric: 'bifrost_shim_upgrades_total',
    backendLabel: 'backend',
    backend: 'bifrost',
    outcomeLabel: 'outcome',
    okOutcomes: ['ok', 'rejected', 'aborted'],
  },
  async run(ctx) {
    const p = ctx.params as {
      timeoutMs: number; minPercent: number; maxErrorRate: number; forSeconds: number; sampleSeconds: number; minRequests: number;
      metric: string; backendLabel: string; backend: string; outcomeLabel: string; okOutcomes: string[];
    };
    const output: string[] = [];
    const rollout = await httpCall(joinUrl(ctx.stack.adminUrl, '/api/rollout'), { timeoutMs: p.timeoutMs });
    const percent = (rollout.body as { percent?: unknown } | null)?.percent;
    if (rollout.status !== 200 || typeof percent !== 'number') {
      return { ok: false, summary: `the shim admin API GET /api/rollout answered ${rollout.status} ${brief(rollout.body)}: expected {percent}`, output };
    }
    output.push(`rollout: ${percent}% on Bifrost (need ≥ ${p.minPercent}%)`);
    if (percent < p.minPercent) {
      return { ok: false, summary: `rollout is at ${percent}%, below the canary's ${p.minPercent}%: run \`bifrost rollout set ${p.minPercent}\``, output, data: {} };
    }
    const sample = async (): Promise<Counts> => {
      const res = await httpCall(joinUrl(ctx.stack.adminUrl, '/metrics'), { timeoutMs: p.timeoutMs });
      if (res.status !== 200 || typeof res.body !== 'string') throw new Error(`the shim's /metrics answered ${res.status}`);
      const samples = parsePrometheusText(res.body);
      const mine = (l: Record<string, string>) => l[p.backendLabel] === p.backend;
      return {
        total: sumOf(samples, p.metric, mine),
        errors: sumOf(samples, p.metric, (l) => mine(l) && !p.okOutcomes.includes(l[p.outcomeLabel] ?? '')),
      };
    };
    ctx.progress(`sampling ${p.metric} for ${p.sampleSeconds}s`);
    const a = await sample();
    await new Promise((r) => setTimeout(r, p.sampleSeconds * 1000));
    const b = await sample();
    const total = b.total - a.total;
    const errors = b.errors - a.errors;
    const rate = total > 0 ? errors / total : 0;
    output.push(`${p.metric}{${p.backendLabel}="${p.backend}"}: ${total} in ${p.sampleSeconds}s, ${errors} errors (${(rate * 100).toFixed(2)}%, limit ${(p.maxErrorRate * 100).toFixed(2)}%)`);
    if (total < p.minRequests) {
      return { ok: false, summary: `only ${total} Bifrost requests in the ${p.sampleSeconds}s sample, need ${p.minRequests} to judge the error rate`, output, data: {} };
    }
    if (rate > p.maxErrorRate) {
      return { ok: false, summary: `Bifrost error rate ${(rate * 100).toFixed(2)}% is above ${(p.maxErrorRate * 100).toFixed(2)}%: the healthy streak restarts`, output, data: {} };
    }
    const now = Date.now();
    const since = typeof ctx.previous?.data?.healthySince === 'string' ? Date.parse(ctx.previous.data.healthySince) : NaN;
    const healthySince = Number.isNaN(since) ? now : since;
    const healthyFor = Math.floor((now - healthySince) / 1000);
    const data = { healthySince: new Date(healthySince).toISOString(), percent, errorRate: rate };
    output.push(`healthy since ${data.healthySince} (${healthyFor}s of ${p.forSeconds}s)`);
    if (healthyFor < p.forSeconds) {
      return { ok: false, summary: `canary healthy for ${healthyFor}s of the ${p.forSeconds}s required: run the check again after ${new Date(healthySince + p.forSeconds * 1000).toISOString()}`, output, data };
    }
    return { ok: true, summary: `${percent}% on Bifrost, error rate ${(rate * 100).toFixed(2)}%, healthy for ${healthyFor}s`, output, data };
  },
};
