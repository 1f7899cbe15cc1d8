/** A ramp document (cli/rollout/ramp-state.ts) for tests: a fresh running ramp at 0 %, overridden field by field. */
import { hostname } from 'node:os';
import { newRampDoc } from '../../cli/rollout/ramp-runner.ts';
import type { RampDoc, RampLease } from '../../cli/rollout/ramp-state.ts';

export function rampDoc(over: Partial<RampDoc> = {}): RampDoc {
  const plan = { steps: [1, 5], intervalMs: 1000, maxErrorRate: 0.01, maxP99Ms: 250, rollbackTo: null, minRequests: 20, bucketBy: null };
  return { ...newRampDoc(plan, 0, null, new Date()), id: 'ramp-1', history: [], ...over };
}

/** A lease held by this test process right now (alive for the CLI's and the dashboard's checks). */
export function liveLease(id = 'lease-test'): RampLease {
  const now = Date.now();
  return { id, pid: process.pid, host: hostname(), startedAt: new Date(now).toISOString(), heartbeatAt: now };
}
