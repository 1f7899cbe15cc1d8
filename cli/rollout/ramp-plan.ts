/**
 * A ramp plan: the steps (percentages, strictly increasing), the interval each
 * step is watched for, and the guard limits. Parsed once from the command line,
 * persisted with the ramp's state, and compared to decide whether re-running a
 * command continues the unfinished ramp.
 */
import type { BucketBy } from '../../proxy/flags-file.ts';
import { parseDurationMs } from '../graceful.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import { parsePercent } from './flag-target.ts';

export interface RampPlan {
  steps: number[];
  intervalMs: number;
  /** 0..1 */
  maxErrorRate: number;
  /** Null: no latency guard. */
  maxP99Ms: number | null;
  /** Where a breach goes; null = the last good step. */
  rollbackTo: number | null;
  minRequests: number;
  /** Null: keep the flag's bucket-by. */
  bucketBy: BucketBy | null;
}

/** Parses `1,5,25,50,100`: percentages, strictly increasing. */
export function parseSteps(value: string): number[] {
  const parts = value.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw new CliError(`--steps must be a comma-separated list of percentages like 1,5,25,50,100, got "${value}"`, EXIT_USAGE);
  const steps = parts.map((p) => parsePercent(p, '--steps'));
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]! <= steps[i - 1]!) throw new CliError(`--steps must increase: ${steps[i - 1]} is followed by ${steps[i]}`, EXIT_USAGE);
  }
  return steps;
}

/** Parses a duration option (500ms, 30s, 10m, 1h) into a positive number of ms. */
export function parseInterval(value: string, name = '--interval'): number {
  let ms: number;
  try {
    ms = parseDurationMs(value, name);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT_USAGE);
  }
  if (!(ms > 0)) throw new CliError(`${name} must be longer than 0, got "${value}"`, EXIT_USAGE);
  return ms;
}

/** Parses an error-rate limit: a ratio 0..1 (`0.01`) or a percentage (`1%`). */
export function parseRate(value: string, name = '--max-error-rate'): number {
  const v = value.trim();
  const n = v.endsWith('%') ? Number(v.slice(0, -1)) / 100 : Number(v);
  if (v === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new CliError(`${name} must be a ratio from 0 to 1 (0.01) or a percentage (1%), got "${value}"`, EXIT_USAGE);
  return n;
}

export function parsePositiveNumber(value: string, name: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new CliError(`${name} must be a positive number, got "${value}"`, EXIT_USAGE);
  return n;
}

export function parseCount(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${name} must be a whole number ≥ 1, got "${value}"`, EXIT_USAGE);
  return n;
}

/** Whether two plans are the same ramp (re-running the same command resumes it). */
export function samePlan(a: RampPlan, b: RampPlan): boolean {
  return (
    a.steps.length === b.steps.length &&
    a.steps.every((s, i) => s === b.steps[i]) &&
    a.intervalMs === b.intervalMs &&
    a.maxErrorRate === b.maxErrorRate &&
    a.maxP99Ms === b.maxP99Ms &&
    a.rollbackTo === b.rollbackTo &&
    a.minRequests === b.minRequests &&
    a.bucketBy === b.bucketBy
  );
}

/** `1 → 5 → 25 (10m each)`, for messages. */
export function describePlan(p: RampPlan): string {
  return `${p.steps.map((s) => `${s}%`).join(' → ')} (${formatDuration(p.intervalMs)} each)`;
}

/** `450ms`, `12s`, `4m05s`, `1h02m`. */
export function formatDuration(ms: number): string {
  const v = Math.max(0, Math.round(ms));
  if (v < 1000) return `${v}ms`;
  if (v < 10_000) return `${(v / 1000).toFixed(1).replace(/\.0$/, '')}s`;
  const s = Math.round(v / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
