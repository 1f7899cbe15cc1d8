/**
 * `canary`: the rollout sends at least `minPercent` of users to Bifrost, and
 * Bifrost's upgrade failure rate (from the shim's `/metrics`) stays under
 * `maxErrorRate`, continuously for `forSeconds`, with at least `minRequests`
 * Bifrost upgrades behind every judgement.
 *
 * The time is measured across runs, and so is the traffic: each run stores
 * the shim's cumulative counters in the recorded result (`data.mark`), and the
 * next run judges the whole period since then from the counters' difference
 * (not a few seconds sampled when someone happens to run the check). A period
 * with too little traffic is carried over to the next run. The streak restarts
 * when a period's failure rate is too high, when the counters went back (the
 * shim restarted: the time in between cannot be judged), or when the flag
 * changed more than once since the last run (the percentage may have dipped
 * below `minPercent` in between). Failures are the shim's own definition
 * (`FAILED_UPGRADE_OUTCOMES`: rejected, refused, error, unavailable), the one
 * the ramp's guard uses; `aborted` (the client gave up) is neither.
 *
 * With several shim replicas (`--admin-url` repeated) the counters are every
 * replica's, summed, and the mark keeps each one's: one replica's counters
 * going back (its restart) or a different set of replicas than the last run
 * read restarts the streak too. The percentage must hold on every replica.
 */
import { FAILED_UPGRADE_OUTCOMES } from '../../../proxy/upgrade-stats.ts';
import { httpCall, joinUrl } from '../http-call.ts';
import { parsePrometheusText, sumOf } from '../prometheus-text.ts';
import { paramsSchema, shimAdminUrls, type StepCheck } from '../step-check.ts';
import { readShimRollout, replicaSpread } from './shim-rollout.ts';

/** Bifrost upgrades counted so far (cumulative), and when they were read. */
interface Mark {
  at: string;
  total: number;
  failed: number;
  /** Each shim replica's counters, when there are several (by admin URL). */
  replicas?: Record<string, { total: number; failed: number }>;
}

/** What a run records for the next one (`CheckRecord.data`). */
export interface CanaryData {
  percent: number;
  version: number | null;
  /** The counters at the start of the period not judged yet. */
  mark?: Mark;
  /** Start of the healthy streak, while there is one. */
  healthySince?: string;
  errorRate?: number;
}

/** Outcomes that are neither success nor failure (the client gave up). */
const NEITHER = new Set(['aborted']);

/** The same figure as `bifrost rollout ramp --min-requests` (default 20). */
export const CANARY_MIN_REQUESTS = 20;

function markOf(v: unknown): Mark | undefined {
  const m = v as Partial<Mark> | null | undefined;
  if (!(m && typeof m.at === 'string' && !Number.isNaN(Date.parse(m.at)) && typeof m.total === 'number' && typeof m.failed === 'number')) return undefined;
  const r = m.replicas as unknown;
  if (r !== undefined && (typeof r !== 'object' || r === null || !Object.values(r).every((x) => typeof x?.total === 'number' && typeof x?.failed === 'number'))) return undefined;
  return m as Mark;
}

const pct = (r: number) => `${(r * 100).toFixed(2)}%`;
const secondsBetween = (from: string, to: string) => Math.round((Date.parse(to) - Date.parse(from)) / 1000);

export const canaryCheck: StepCheck = {
  type: 'canary',
  manual: false,
  describes: 'rollout ≥ minPercent with the Bifrost upgrade failure rate under maxErrorRate for forSeconds, judged over all the time between runs',
  paramsSchema: paramsSchema({
    minPercent: { type: 'number', minimum: 0, maximum: 100, expected: 'a percentage 0..100' },
    maxErrorRate: { type: 'number', minimum: 0, maximum: 1, expected: 'a ratio 0..1 (0.01 = 1%)' },
    forSeconds: { type: 'integer', minimum: 0, expected: 'seconds the canary must stay healthy' },
    sampleSeconds: { type: 'number', minimum: 0, maximum: 300, expected: 'seconds between the two metric samples of a first run' },
    minRequests: { type: 'integer', minimum: 0, expected: 'the least Bifrost upgrades in a period for its failure rate to count' },
    metric: { type: 'string', pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$', expected: 'a Prometheus counter name' },
    backendLabel: { type: 'string' },
    backend: { type: 'string' },
    outcomeLabel: { type: 'string' },
  }),
  defaults: {
    timeoutMs: 5000,
    minPercent: 5,
    maxErrorRate: 0.01,
    forSeconds: 600,
    sampleSeconds: 5,
    minRequests: CANARY_MIN_REQUESTS,
    metric: 'bifrost_shim_upgrades_total',
    backendLabel: 'backend',
    backend: 'bifrost',
    outcomeLabel: 'outcome',
  },
  async run(ctx) {
    const p = ctx.params as {
      timeoutMs: number; minPercent: number; maxErrorRate: number; forSeconds: number; sampleSeconds: number; minRequests: number;
      metric: string; backendLabel: string; backend: string; outcomeLabel: string;
    };
    const output: string[] = [];
    const rollout = await readShimRollout(ctx.stack, p.timeoutMs);
    if (typeof rollout === 'string') return { ok: false, summary: rollout, output, data: {} };
    const { percent, version } = rollout;
    output.push(`rollout: ${percent}% on Bifrost${rollout.replicas ? ` (the lowest of ${rollout.replicas.length} shim replicas)` : ''} (need ≥ ${p.minPercent}%)`);
    const spread = replicaSpread(rollout);
    if (spread) output.push(spread);
    if (percent < p.minPercent) {
      const data: CanaryData = { percent, version };
      return { ok: false, summary: `rollout is at ${percent}%, below the canary's ${p.minPercent}%: run \`bifrost rollout set ${p.minPercent}\``, output, data: { ...data } };
    }
    const sampleOne = async (url: string, urls: string[]): Promise<{ total: number; failed: number }> => {
      const res = await httpCall(joinUrl(url, '/metrics'), { timeoutMs: p.timeoutMs });
      if (res.status !== 200 || typeof res.body !== 'string') throw new Error(`the shim's /metrics${urls.length > 1 ? ` at ${url}` : ''} answered ${res.status}`);
      const samples = parsePrometheusText(res.body);
      const outcome = (l: Record<string, string>) => l[p.outcomeLabel] ?? '';
      const counted = (l: Record<string, string>) => l[p.backendLabel] === p.backend && !NEITHER.has(outcome(l));
      return { total: sumOf(samples, p.metric, counted), failed: sumOf(samples, p.metric, (l) => counted(l) && FAILED_UPGRADE_OUTCOMES.has(outcome(l))) };
    };
    const sample = async (): Promise<Mark> => {
      // Looked up at each sample: a replica behind a dns+ name that restarted has a new address (and new counters).
      const expanded = await shimAdminUrls(ctx.stack);
      const unresolved = expanded.find((e) => e.error);
      if (unresolved) throw new Error(unresolved.error);
      const urls = expanded.map((e) => e.url);
      const each = await Promise.all(urls.map((u) => sampleOne(u, urls)));
      const at = new Date().toISOString();
      const total = each.reduce((n, x) => n + x.total, 0);
      const failed = each.reduce((n, x) => n + x.failed, 0);
      return urls.length === 1 ? { at, total, failed } : { at, total, failed, replicas: Object.fromEntries(urls.map((u, i) => [u, each[i]!])) };
    };
    /** Why the counters since `from` cannot be compared with `to` (a replica restarted, or other replicas were read); null when they can. */
    const discontinuity = (from: Mark, to: Mark): string | null => {
      const before = Object.keys(from.replicas ?? {}).sort();
      const after = Object.keys(to.replicas ?? {}).sort();
      if (before.join(' ') !== after.join(' ')) {
        const which = (list: string[]) => (list.length ? `the shim replicas ${list.join(', ')}` : 'one shim');
        return `the last run read ${which(before)}, this one ${which(after)}`;
      }
      const back = Object.entries(to.replicas ?? {})
        .filter(([u, x]) => x.total < from.replicas![u]!.total || x.failed < from.replicas![u]!.failed)
        .map(([u]) => u);
      if (back.length) return `the counters of the shim replica${back.length > 1 ? 's' : ''} ${back.join(', ')} went back since the last run (a restart?)`;
      if (to.total < from.total || to.failed < from.failed) return "the shim's counters went back since the last run (a restart?)";
      return null;
    };

    // Continuity with the previous run: may the period since its mark be judged, and the streak go on?
    const prev = (ctx.previous?.data ?? {}) as Partial<CanaryData>;
    let mark = markOf(prev.mark);
    let streak = typeof prev.healthySince === 'string' && !Number.isNaN(Date.parse(prev.healthySince)) ? prev.healthySince : undefined;
    const breakStreak = (why: string) => {
      if (mark || streak) output.push(`${why}: the period since the last run cannot be judged, the streak restarts`);
      mark = undefined;
      streak = undefined;
    };
    if (mark && (typeof prev.percent !== 'number' || prev.percent < p.minPercent)) breakStreak(`the last run saw the rollout at ${prev.percent ?? '?'}%`);
    if (mark && typeof prev.version === 'number' && version !== null && (version < prev.version || version > prev.version + 1)) {
      breakStreak(
        version < prev.version
          ? `the flag was rewritten since the last run (version ${prev.version} → ${version})`
          : `the flag changed ${version - prev.version} times since the last run (version ${prev.version} → ${version}): the percentage may have been below ${p.minPercent}% in between`,
      );
    }
    if (mark && version === null) output.push('note: the shim reports no flag version, so rollout changes between runs cannot be seen');
    ctx.progress(`reading ${p.metric} from the shim`);
    let now = await sample();
    const gap = mark ? discontinuity(mark, now) : null;
    if (gap) breakStreak(gap);
    if (!mark) {
      // A first run (or a restarted streak): judge a short sample.
      ctx.progress(`sampling ${p.metric} for ${p.sampleSeconds}s`);
      mark = now;
      await new Promise((r) => setTimeout(r, p.sampleSeconds * 1000));
      now = await sample();
    }
    const total = now.total - mark.total;
    const failed = now.failed - mark.failed;
    const span = `${secondsBetween(mark.at, now.at)}s since ${mark.at}`;
    const rate = total > 0 ? failed / total : 0;
    output.push(`${p.metric}{${p.backendLabel}="${p.backend}"}: ${total} upgrades in the ${span}, ${failed} failed (${pct(rate)}, limit ${pct(p.maxErrorRate)})`);
    if (total < p.minRequests) {
      const data: CanaryData = { percent, version, mark, ...(streak ? { healthySince: streak } : {}) };
      return {
        ok: false,
        summary: `only ${total} Bifrost upgrades in the ${span}, need ${p.minRequests} to judge the failure rate: run the check again later (the count carries over)`,
        output,
        data: { ...data },
      };
    }
    if (rate > p.maxErrorRate) {
      const data: CanaryData = { percent, version, mark: now, errorRate: rate };
      return { ok: false, summary: `Bifrost upgrade failure rate ${pct(rate)} (${failed} of ${total}) is above ${pct(p.maxErrorRate)}: the healthy streak restarts`, output, data: { ...data } };
    }
    const healthySince = streak ?? mark.at;
    const healthyFor = Math.floor((Date.now() - Date.parse(healthySince)) / 1000);
    const data: CanaryData = { percent, version, mark: now, healthySince, errorRate: rate };
    output.push(`healthy since ${healthySince} (${healthyFor}s of ${p.forSeconds}s)`);
    if (healthyFor < p.forSeconds) {
      return {
        ok: false,
        summary: `canary healthy for ${healthyFor}s of the ${p.forSeconds}s required: run the check again after ${new Date(Date.parse(healthySince) + p.forSeconds * 1000).toISOString()}`,
        output,
        data: { ...data },
      };
    }
    return { ok: true, summary: `${percent}% on Bifrost, failure rate ${pct(rate)} over ${total} upgrades, healthy for ${healthyFor}s`, output, data: { ...data } };
  },
};
