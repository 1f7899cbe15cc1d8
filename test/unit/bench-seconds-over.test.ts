/** The fanout step's account of which seconds broke the latency bound. */
import { describe, expect, it } from 'vitest';
import { secondsOver } from '../../bench/scenarios/fanout.ts';

describe('secondsOver', () => {
  it('names the seconds at or over the bound and the worst of them', () => {
    expect(secondsOver([12, 50, 8, 91.5, 49.9], 50)).toBe('2 of 5 seconds had an event ≥ 50 ms (s1,s3; worst 91.5 ms in s3)');
  });

  it('says so when no second reached the bound (a step can fail on lost messages alone)', () => {
    expect(secondsOver([1, 2, 3], 50)).toBe("no second's worst event reached 50 ms");
    expect(secondsOver([], 50)).toBe("no second's worst event reached 50 ms");
  });
});
