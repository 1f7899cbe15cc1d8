/** Stream epochs: the Redis broker passes a fresh one with every publish, for a stream that turns out to be new. */
import { describe, expect, it } from 'vitest';
import { newEpoch } from '../../gateway/broker-memory.ts';

describe('newEpoch', () => {
  it('gives 12 hex digits, a different value each time, across refills of its random pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const e = newEpoch();
      expect(e).toMatch(/^[0-9a-f]{12}$/);
      seen.add(e);
    }
    expect(seen.size).toBe(2000);
  });
});
