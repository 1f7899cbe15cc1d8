/** A ramp document (cli/rollout/ramp-state.ts) for tests: a fresh running ramp at 0 %, overridden field by field. */
import { hostname } from 'node:os';
import { RAMP_FORMAT, type RampDoc, type RampLease } from '../../cli/rollout/ramp-state.ts';

export function rampDoc(over: Partial<RampDoc> = {}): RampDoc {
  const at = new Date().toISOString();
  return {
    format: RAMP_FORMAT,
    version: 0,
    id: 'ramp-1',
    plan: { steps: [1, 5], intervalMs: 1000, maxErrorRate: 0.01, maxP99Ms: 250, rollbackTo: null, minRequests: 20, bucketBy: null },
    phase: 'running',
    stepIndex: 0,
    stepElapsedMs: 0,
    startPercent: 0,
    lastGoodPercent: 0,
    percent: 0,
    paused: false,
    pausedBy: null,
    pausedAt: null,
    startedAt: at,
    updatedAt: at,
    finishedAt: null,
    outcome: null,
    breaches: [],
    owner: null,
    history: [],
    ...over,
  };
}

/** A lease held by this test process right now (alive for the CLI's and the dashboard's checks). */
export function liveLease(id = 'lease-test'): RampLease {
  const now = Date.now();
  return { id, pid: process.pid, host: hostname(), startedAt: new Date(now).toISOString(), heartbeatAt: now };
}
