import { describe, expect, it } from 'vitest';
import { BifrostNodePool, isEligible, orderByRendezvous, orderByTwoRandomChoices, type BifrostNode } from '../../proxy/bifrost-nodes.ts';
import { silentLogger } from '../support/silent-logger.ts';

function node(id: string, loadFactor: number | undefined, extra: Partial<BifrostNode> = {}): BifrostNode {
  const url = `http://127.0.0.1:1/${id}`;
  return { url, target: new URL(url), id, loadFactor, draining: false, reachable: true, lastPolledAt: 0, failedUntil: 0, assignedSincePoll: 0, ...extra };
}

/** A deterministic random source cycling through the given values. */
function seq(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

/** Sends `n` sockets one at a time between two polls, as the shim does; returns the picks per node id. */
function burst(nodes: BifrostNode[], n: number): Record<string, number> {
  const picks: Record<string, number> = Object.fromEntries(nodes.map((x) => [x.id, 0]));
  for (let k = 0; k < n; k++) {
    const [first] = orderByTwoRandomChoices(nodes, Math.random);
    first!.assignedSincePoll += 1;
    picks[first!.id]! += 1;
  }
  return picks;
}

describe('Bifrost node choice', () => {
  it('skips draining, overloaded, unreachable and recently failed nodes; unknown load and unpolled nodes stay eligible', () => {
    const now = 10_000;
    expect(isEligible(node('a', 0.5), 1, now)).toBe(true);
    expect(isEligible(node('a', 1), 1, now)).toBe(true);
    expect(isEligible(node('a', 1.01), 1, now)).toBe(false);
    expect(isEligible(node('a', 0.1, { draining: true }), 1, now)).toBe(false);
    expect(isEligible(node('a', 0.1, { reachable: false }), 1, now)).toBe(false);
    expect(isEligible(node('a', undefined, { reachable: undefined }), 1, now)).toBe(true);
    expect(isEligible(node('a', 0.1, { failedUntil: now + 1 }), 1, now)).toBe(false);
    expect(isEligible(node('a', 0.1, { failedUntil: now }), 1, now)).toBe(true);
  });

  it('takes the less loaded of two random nodes, then the rest by load as retry candidates', () => {
    const nodes = [node('a', 0.9), node('b', 0.2), node('c', 0.5), node('d', 0.1)];
    // first pick: index 0 (a); second: floor(0.1*3)=0 among the others → b. b wins.
    expect(orderByTwoRandomChoices(nodes, seq(0, 0.1)).map((n) => n.id)).toEqual(['b', 'd', 'c', 'a']);
    // picks c (index 2) and a (index 0): c wins even though d is the global minimum.
    expect(orderByTwoRandomChoices(nodes, seq(0.5, 0)).map((n) => n.id)).toEqual(['c', 'd', 'b', 'a']);
  });

  it('spreads between nodes of nearly equal load by what this shim sent since the last poll (no herd)', () => {
    const picks = burst([node('a', 0.3), node('b', 0.31)], 40);
    expect(Math.abs(picks.a! - picks.b!)).toBeLessThanOrEqual(1);
    // A clearly hotter node still loses whatever was assigned.
    const hot = node('hot', 0.9);
    const cold = node('cold', 0.2, { assignedSincePoll: 50 });
    expect(orderByTwoRandomChoices([hot, cold], Math.random)[0]!.id).toBe('cold');
  });

  it('does not herd a storm onto the less loaded of two nodes between polls: it gets more, not all', () => {
    const picks = burst([node('a', 0.4), node('b', 0.5)], 1000);
    expect(picks.a).toBeGreaterThan(500);
    expect(picks.a).toBeLessThan(600);
    expect(picks.b).toBeGreaterThan(400);
    // A node near its limit still gets nothing while the other has room.
    expect(burst([node('full', 0.99), node('roomy', 0.2)], 500)).toEqual({ full: 0, roomy: 500 });
  });

  it('never returns the same node twice and handles one or no node', () => {
    expect(orderByTwoRandomChoices([], Math.random)).toEqual([]);
    const one = [node('a', 0.3)];
    expect(orderByTwoRandomChoices(one, Math.random).map((n) => n.id)).toEqual(['a']);
    for (let k = 0; k < 200; k++) {
      const order = orderByTwoRandomChoices([node('a', Math.random()), node('b', Math.random()), node('c', undefined)]);
      expect(new Set(order.map((n) => n.id)).size).toBe(3);
    }
  });

  it('spreads new sockets: the least loaded node wins most, but not all, choices', () => {
    const nodes = [node('a', 0.1), node('b', 0.5), node('c', 0.9)];
    const wins: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let k = 0; k < 3000; k++) wins[orderByTwoRandomChoices(nodes)[0]!.id]! += 1;
    // a wins whenever it is drawn (2/3 of draws); c never wins (it always loses the pair).
    expect(wins.c).toBe(0);
    expect(wins.a! / 3000).toBeGreaterThan(0.6);
    expect(wins.b).toBeGreaterThan(0);
  });
});

describe('polling sessions: rendezvous placement by user', () => {
  const nodes = ['a', 'b', 'c', 'd'].map((id) => node(id, 0.2));
  const users = Array.from({ length: 4000 }, (_, i) => `user-${i}`);

  it('gives every caller the same order whatever the order it lists the nodes in (replicas agree without talking)', () => {
    const reversed = [...nodes].reverse();
    for (const u of users.slice(0, 200)) {
      expect(orderByRendezvous(reversed, u).map((n) => n.id)).toEqual(orderByRendezvous(nodes, u).map((n) => n.id));
    }
  });

  it('spreads users about evenly, and a node leaving moves only its own users', () => {
    const first = (list: BifrostNode[], u: string) => orderByRendezvous(list, u)[0]!.id;
    const counts: Record<string, number> = {};
    for (const u of users) counts[first(nodes, u)] = (counts[first(nodes, u)] ?? 0) + 1;
    for (const id of ['a', 'b', 'c', 'd']) expect(counts[id]).toBeGreaterThan(800);
    const withoutC = nodes.filter((n) => n.id !== 'c');
    for (const u of users) {
      const before = first(nodes, u);
      if (before !== 'c') expect(first(withoutC, u)).toBe(before);
    }
  });
});

describe('polling sessions: lookups rank over every known node, placement skips unfit ones', () => {
  /** A pool of four polled nodes (never started) and a user whose home node is its first in rendezvous order. */
  function setup(): { pool: BifrostNodePool; home: BifrostNode; user: string } {
    const pool = new BifrostNodePool({ urls: ['a', 'b', 'c', 'd'].map((h) => `http://${h}.test:8080`), log: silentLogger });
    for (const n of pool.nodes) Object.assign(n, { reachable: true, loadFactor: 0.2 });
    const user = 'user-42';
    return { pool, home: pool.byUser(user, false)[0]!, user };
  }

  it('a penalised, overloaded or draining node still gets its users\' session lookups (the session is there)', () => {
    for (const unfit of [
      (n: BifrostNode, pool: BifrostNodePool) => pool.markFailed(n),
      (n: BifrostNode) => (n.loadFactor = 3),
      (n: BifrostNode) => (n.draining = true),
    ]) {
      const { pool, home, user } = setup();
      unfit(home, pool);
      // Another replica that did not see the refusal / the load / the drain agrees: same node.
      expect(pool.byUser(user, false)[0]).toBe(home);
      expect(pool.byUser(user, false)).toHaveLength(4);
    }
  });

  it('a new session is not placed on an overloaded or draining node; the refusal penalty (one replica\'s view) does not move it', () => {
    for (const [unfit, moves] of [
      [(n: BifrostNode) => (n.loadFactor = 3), true],
      [(n: BifrostNode) => (n.draining = true), true],
      [(n: BifrostNode, pool: BifrostNodePool) => pool.markFailed(n), false],
    ] as const) {
      const { pool, home, user } = setup();
      unfit(home, pool);
      expect(pool.byUser(user, true)[0] === home).toBe(!moves);
    }
  });

  it('a node known to be unreachable is skipped by both, and placing counts the socket against the chosen node', () => {
    const { pool, home, user } = setup();
    home.reachable = false;
    expect(pool.byUser(user, false)).not.toContain(home);
    const [placed] = pool.byUser(user, true);
    expect(placed).not.toBe(home);
    expect(placed!.assignedSincePoll).toBe(1);
    pool.byUser(user, false);
    expect(placed!.assignedSincePoll).toBe(1);
  });
});
