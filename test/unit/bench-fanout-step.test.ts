/** How a failed fanout step explains itself: which seconds broke the latency bound, and where messages went missing. */
import { describe, expect, it } from 'vitest';
import { lostWhy, secondsOver } from '../../bench/scenarios/fanout.ts';

describe('secondsOver', () => {
  it('names the seconds at or over the bound and the worst of them', () => {
    expect(secondsOver([12, 50, 8, 91.5, 49.9], 50)).toBe('2 of 5 seconds had an event ≥ 50 ms (s1,s3; worst 91.5 ms in s3)');
  });

  it('says so when no second reached the bound (a step can fail on lost messages alone)', () => {
    expect(secondsOver([1, 2, 3], 50)).toBe("no second's worst event reached 50 ms");
    expect(secondsOver([], 50)).toBe("no second's worst event reached 50 ms");
  });
});

describe('lostWhy', () => {
  it('tells publishes never made from events published and not received', () => {
    expect(lostWhy(560, { skipped: 28, failed: 0 }, 20)).toBe('lost 560: 28 publishes skipped (too many in flight) → 560 never sent; 0 published, not received');
    expect(lostWhy(600, { skipped: 28, failed: 1 }, 20)).toBe('lost 600: 28 publishes skipped (too many in flight), 1 publish refused → 580 never sent; 20 published, not received');
  });

  it('blames delivery when every publish was made', () => {
    expect(lostWhy(7, { skipped: 0, failed: 0 }, 20)).toBe('lost 7: published, not received');
  });
});
