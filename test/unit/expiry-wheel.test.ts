/** The one-timer token expiry of native sockets (gateway/expiry-wheel.ts), on a fixed clock. */
import { describe, expect, it } from 'vitest';
import { ExpiryWheel } from '../../gateway/expiry-wheel.ts';

const T0 = 1_800_000_000_000; // ms, a whole second

function item(log: string[], name: string) {
  return { expire: () => log.push(name) };
}

describe('ExpiryWheel', () => {
  it('expires each item once, in the tick after its second has passed, in expiry order', () => {
    const log: string[] = [];
    const w = new ExpiryWheel(1000, T0);
    const s = T0 / 1000;
    w.add(item(log, 'b'), s + 3);
    w.add(item(log, 'a'), s + 1);
    w.add(item(log, 'c'), s + 3);
    expect(w.size).toBe(3);
    w.tick(T0 + 999);
    expect(log).toEqual([]);
    w.tick(T0 + 1000);
    expect(log).toEqual(['a']);
    w.tick(T0 + 2500);
    expect(log).toEqual(['a']);
    w.tick(T0 + 3000);
    expect(log).toEqual(['a', 'b', 'c']);
    w.tick(T0 + 10_000);
    expect(log).toEqual(['a', 'b', 'c']);
    expect(w.size).toBe(0);
  });

  it('expires an already expired item on the next tick, and a cancelled one never', () => {
    const log: string[] = [];
    const w = new ExpiryWheel(1000, T0);
    const s = T0 / 1000;
    w.add(item(log, 'past'), s - 100);
    const keep = item(log, 'cancelled');
    const key = w.add(keep, s + 2);
    w.delete(keep, key);
    w.delete(keep, key); // twice is harmless
    w.tick(T0 + 1000);
    expect(log).toEqual(['past']);
    w.tick(T0 + 5000);
    expect(log).toEqual(['past']);
    expect(w.size).toBe(0);
  });

  it('catches up after a long stall without walking every second', () => {
    const log: string[] = [];
    const w = new ExpiryWheel(1000, T0);
    const s = T0 / 1000;
    for (let i = 1; i <= 5; i++) w.add(item(log, `i${i}`), s + i * 1000);
    w.tick(T0 + 10 * 86_400_000); // ten days later
    expect(log).toEqual(['i1', 'i2', 'i3', 'i4', 'i5']);
  });
});
