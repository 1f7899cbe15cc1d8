/** Ramp plans, durations, leases and progress rendering. */
import pc from 'picocolors';
import { describe, expect, it } from 'vitest';
import { parsePercent } from '../../cli/rollout/flag-target.ts';
import { rampFraction, renderRampLine } from '../../cli/rollout/progress-bar.ts';
import { describePlan, formatDuration, parseInterval, parseRate, parseSteps, samePlan, type RampPlan } from '../../cli/rollout/ramp-plan.ts';
import { leaseAlive, timeLeftMs, withEvent, HISTORY_LIMIT, type RampDoc } from '../../cli/rollout/ramp-state.ts';
import { CliError } from '../../cli/output.ts';
import { rollbackTarget } from '../../cli/rollout/ramp-runner.ts';
import { processIdentity } from '../../cli/pid.ts';

const plan: RampPlan = { steps: [1, 5, 25], intervalMs: 600_000, maxErrorRate: 0.01, maxP99Ms: 250, rollbackTo: null, minRequests: 20, bucketBy: null };

describe('ramp plan parsing', () => {
  it('parses increasing percentage steps and refuses anything else with exit 2', () => {
    expect(parseSteps('1,5,25,50,100')).toEqual([1, 5, 25, 50, 100]);
    expect(parseSteps(' 0.5, 2.25 ')).toEqual([0.5, 2.25]);
    for (const bad of ['5,1', '1,1', '1,,5', '', '1,200', 'a']) {
      let err: unknown;
      try {
        parseSteps(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(2);
    }
  });

  it('parses intervals 500ms/30s/10m and error rates as ratios or percentages', () => {
    expect(parseInterval('500ms')).toBe(500);
    expect(parseInterval('30s')).toBe(30_000);
    expect(parseInterval('10m')).toBe(600_000);
    expect(() => parseInterval('0s')).toThrow(/longer than 0/);
    expect(() => parseInterval('ten minutes')).toThrow(/must be a duration/);
    expect(parseRate('0.01')).toBe(0.01);
    expect(parseRate('2%')).toBe(0.02);
    expect(() => parseRate('5')).toThrow(/ratio from 0 to 1/);
    expect(parsePercent('12.5%')).toBe(12.5);
    expect(() => parsePercent('0.0001')).toThrow(/at most 3 decimals/);
  });

  it('treats the same options as the same ramp (re-running resumes it)', () => {
    expect(samePlan(plan, { ...plan, steps: [1, 5, 25] })).toBe(true);
    expect(samePlan(plan, { ...plan, steps: [1, 5, 50] })).toBe(false);
    expect(samePlan(plan, { ...plan, intervalMs: 1000 })).toBe(false);
    expect(samePlan(plan, { ...plan, rollbackTo: 0 })).toBe(false);
    expect(describePlan(plan)).toBe('1% → 5% → 25% (10m00s each)');
  });

  it('formats durations for people', () => {
    expect(formatDuration(450)).toBe('450ms');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(42_000)).toBe('42s');
    expect(formatDuration(245_000)).toBe('4m05s');
    expect(formatDuration(3_720_000)).toBe('1h02m');
  });
});

describe('ramp leases and time left', () => {
  const lease = { id: 'l1', pid: 4242, host: 'box-a', startedAt: '', heartbeatAt: 10_000 };

  it('is alive with a fresh heartbeat and a live pid, dead otherwise', () => {
    const alive = () => true;
    const dead = () => false;
    expect(leaseAlive(lease, { now: 12_000, host: 'box-a', staleMs: 15_000, isProcessAlive: alive })).toBe(true);
    expect(leaseAlive(lease, { now: 12_000, host: 'box-a', staleMs: 15_000, isProcessAlive: dead })).toBe(false); // killed on this host
    expect(leaseAlive(lease, { now: 12_000, host: 'box-b', staleMs: 15_000, isProcessAlive: dead })).toBe(true); // another host: heartbeat decides
    expect(leaseAlive(lease, { now: 30_000, host: 'box-b', staleMs: 15_000, isProcessAlive: alive })).toBe(false); // stale
    expect(leaseAlive(null, { now: 0, host: 'box-a', staleMs: 15_000 })).toBe(false);
  });

  it("on this host, a lease whose pid now belongs to another process (its recorded start time differs) is dead; the recorded process's is alive", () => {
    const parent = processIdentity(process.ppid);
    expect(parent).toBeDefined(); // Linux: /proc tells a process's boot and start time
    const check = { now: 12_000, host: 'box-a', staleMs: 15_000 };
    const recorded = { ...lease, pid: process.ppid };
    expect(leaseAlive({ ...recorded, process: parent }, check)).toBe(true);
    expect(leaseAlive({ ...recorded, process: { ...parent!, startTicks: '1' } }, check)).toBe(false); // pid reused after a kill
    expect(leaseAlive({ ...recorded, process: { ...parent!, bootId: 'before-the-reboot' } }, check)).toBe(false);
    expect(leaseAlive(recorded, check)).toBe(true); // older documents without an identity: the pid decides
    expect(leaseAlive({ ...recorded, process: { bootId: 7 } as never }, check)).toBe(true); // a malformed identity is ignored
    expect(leaseAlive({ ...recorded, process: { ...parent!, startTicks: '1' } }, { ...check, host: 'box-b' })).toBe(true); // another host: heartbeat decides
  });

  it('counts the rest of the current step plus the following steps', () => {
    expect(timeLeftMs({ plan, stepIndex: 1, stepElapsedMs: 100_000 })).toBe(500_000 + 600_000);
    expect(timeLeftMs({ plan, stepIndex: 3, stepElapsedMs: 0 })).toBe(0);
  });

  it('keeps a bounded history', () => {
    let doc = { history: [] } as unknown as RampDoc;
    for (let i = 0; i < HISTORY_LIMIT + 10; i++) doc = withEvent(doc, { event: `e${i}` });
    expect(doc.history).toHaveLength(HISTORY_LIMIT);
    expect(doc.history.at(-1)!.event).toBe(`e${HISTORY_LIMIT + 9}`);
  });
});

describe('ramp progress line', () => {
  const colors = pc.createColors(false);
  const view = { stepIndex: 1, steps: [1, 5, 25], stepElapsedMs: 150_000, intervalMs: 600_000, timeLeftMs: 1_050_000, paused: false, readings: [] };

  it('shows a bar, the current step, time to the next step and in total', () => {
    expect(rampFraction(view)).toBeCloseTo((1 + 0.25) / 3);
    expect(renderRampLine(view, { unicode: false, colors, width: 12 })).toBe('#####------- step 2/3 5% · next 25% in 7m30s · 17m30s left');
    expect(renderRampLine({ ...view, paused: true }, { unicode: true, colors, width: 12 })).toBe('█████░░░░░░░ step 2/3 5% · paused (7m30s left in step) · 17m30s left');
  });

  it('adds the latest readings', () => {
    const line = renderRampLine(
      { ...view, stepIndex: 2, readings: [{ guard: 'p99-latency', value: 41.2, limit: 250, baseline: null, events: 100, breached: false, text: '' }] },
      { unicode: false, colors, width: 12 },
    );
    expect(line).toMatch(/step 3\/3 25% · done in 7m30s · .* · p99 41ms$/);
  });
});

describe('where a breach rolls back to', () => {
  it('always strictly below the breaching step: --rollback-to if below, else the last good step if below, else 0%', () => {
    expect(rollbackTarget({ rollbackTo: 5 }, 2, 10)).toEqual({ to: 5, why: '--rollback-to' });
    expect(rollbackTarget({ rollbackTo: null }, 2, 10)).toEqual({ to: 2, why: 'last good step' });
    expect(rollbackTarget({ rollbackTo: 30 }, 2, 10)).toEqual({ to: 2, why: 'last good step; --rollback-to 30% is not below the breaching 10%' });
    // A first step equal to the percentage the ramp started from: its "last good" is the breaching step itself.
    expect(rollbackTarget({ rollbackTo: null }, 10, 10)).toEqual({ to: 0, why: 'the last good step 10% is not below the breaching 10%' });
    expect(rollbackTarget({ rollbackTo: 10 }, 10, 10)).toEqual({ to: 0, why: '--rollback-to 10% is not below the breaching 10%; the last good step 10% is not below the breaching 10%' });
    expect(rollbackTarget({ rollbackTo: null }, 40, 25).to).toBe(0);
  });
});
