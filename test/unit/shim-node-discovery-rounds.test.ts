/**
 * The rounds of DNS node discovery (proxy/bifrost-nodes.ts, "Node discovery"):
 * bounded by the poll timeout, never more than one in flight, stale answers
 * dropped, nothing applied after close, and configured nodes never removed by
 * discovery. The "nodes" are 127.0.0.x:1 (nothing listens: their /load polls
 * fail at once); only the DNS side matters here.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BifrostNodePool } from '../../proxy/bifrost-nodes.ts';
import { silentLogger } from '../support/silent-logger.ts';

const pools: BifrostNodePool[] = [];
afterEach(() => {
  for (const p of pools.splice(0)) p.close();
});

function pool(urls: string[], resolveHost: (host: string) => Promise<string[]>, pollIntervalMs = 20, pollTimeoutMs = 200): BifrostNodePool {
  const p = new BifrostNodePool({ urls, resolveHost, log: silentLogger, pollIntervalMs, pollTimeoutMs });
  pools.push(p);
  return p;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Settles with 'started' or, when start() has not returned within `ms`, 'blocked'. */
function startWithin(p: BifrostNodePool, ms: number): Promise<'started' | 'blocked'> {
  return Promise.race([p.start().then(() => 'started' as const), sleep(ms).then(() => 'blocked' as const)]);
}

describe('Bifrost node discovery rounds', () => {
  it('a resolver that never answers: start returns after the poll timeout with no node, and a new lookup starts only per round, not per tick', async () => {
    let calls = 0;
    const hung = (): Promise<string[]> => {
      calls += 1;
      // Answers only after 5 s (a hung resolver), long after the poll timeout.
      return sleep(5000).then(() => ['127.0.0.7']);
    };
    const p = pool(['dns+http://gateways.test:1'], hung, 20, 200);
    const began = Date.now();
    expect(await startWithin(p, 3000)).toBe('started');
    expect(Date.now() - began).toBeLessThan(2000);
    expect(p.nodes).toEqual([]);
    await sleep(1000);
    // At most one round in flight: about one lookup per poll timeout, not one per 20 ms tick (50).
    expect(calls).toBeLessThanOrEqual(10);
    expect(calls).toBeGreaterThanOrEqual(2);
    // Timed-out lookups are given up on (their late answers are never applied). An injected resolver is not
    // cancelled, so its abandoned calls still run; the default one (c-ares) is cancelled at its time limit.
    expect(p.nodes).toEqual([]);
  });

  it('skips a round while the previous one runs (a slow but answering resolver)', async () => {
    let calls = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const slow = async (): Promise<string[]> => {
      calls += 1;
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(100);
      inFlight -= 1;
      return ['127.0.0.1'];
    };
    const p = pool(['dns+http://gateways.test:1'], slow, 10, 500);
    await p.start();
    await sleep(600);
    expect(maxInFlight).toBe(1);
    // Rounds of >= 100 ms in ~700 ms: at most about 7 (one per 10 ms tick would be ~70).
    expect(calls).toBeLessThanOrEqual(12);
    expect(p.nodes.map((n) => n.url)).toEqual(['http://127.0.0.1:1']);
  });

  it('an answer arriving after its time limit (after a newer one) does not bring removed pods back', async () => {
    let call = 0;
    const resolve = async (): Promise<string[]> => {
      call += 1;
      if (call === 1) return ['127.0.0.1', '127.0.0.2'];
      // The second lookup is slow (past the poll timeout) and answers the old set late.
      if (call === 2) return sleep(400).then(() => ['127.0.0.1', '127.0.0.2']);
      return ['127.0.0.1'];
    };
    const p = pool(['dns+http://gateways.test:1'], resolve, 20, 150);
    await p.start();
    expect(p.nodes.map((n) => n.url).sort()).toEqual(['http://127.0.0.1:1', 'http://127.0.0.2:1']);
    const seen: number[] = [];
    const until = Date.now() + 900;
    while (Date.now() < until) {
      seen.push(p.nodes.length);
      await sleep(10);
    }
    // Once the pod left (call 3 on), the late answer of call 2 (at ~400 ms) never re-adds it.
    const firstOne = seen.indexOf(1);
    expect(firstOne).toBeGreaterThanOrEqual(0);
    expect(seen.slice(firstOne).every((n) => n === 1)).toBe(true);
  });

  it('applies nothing after close, even from a lookup that was running', async () => {
    let release: (a: string[]) => void = () => undefined;
    let call = 0;
    const resolve = (): Promise<string[]> => {
      call += 1;
      if (call === 1) return Promise.resolve([]);
      return new Promise((r) => (release = r));
    };
    const p = pool(['dns+http://gateways.test:1'], resolve, 20, 2000);
    await p.start();
    await sleep(100);
    expect(call).toBe(2);
    p.close();
    release(['127.0.0.1']);
    await sleep(50);
    expect(p.nodes).toEqual([]);
  });

  it('a discovered address that goes away does not take a configured node with the same URL along', async () => {
    let answer = ['127.0.0.1', '127.0.0.2'];
    const p = pool(['http://127.0.0.1:1', 'dns+http://gateways.test:1'], async () => answer, 20, 200);
    await p.start();
    expect(p.nodes.map((n) => n.url).sort()).toEqual(['http://127.0.0.1:1', 'http://127.0.0.2:1']);
    answer = [];
    const until = Date.now() + 2000;
    while (p.nodes.length > 1 && Date.now() < until) await sleep(20);
    expect(p.nodes.map((n) => n.url)).toEqual(['http://127.0.0.1:1']);
  });

  it('tries a name that does not end in a dot with the search domains of resolv.conf too; a fully qualified name only as it is', async () => {
    const { namesToTry, parseSearchDomains } = await import('../../proxy/bifrost-nodes.ts');
    const conf = 'nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n';
    const search = parseSearchDomains(conf);
    expect(search).toEqual(['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    expect(parseSearchDomains('domain example.com\n# search ignored.test\n')).toEqual(['example.com']);
    expect(parseSearchDomains('nameserver 1.1.1.1\n')).toEqual([]);
    expect(namesToTry('gw-nodes.default.svc', search)).toEqual([
      'gw-nodes.default.svc',
      'gw-nodes.default.svc.default.svc.cluster.local',
      'gw-nodes.default.svc.svc.cluster.local',
      'gw-nodes.default.svc.cluster.local',
    ]);
    expect(namesToTry('gw-nodes.default.svc.cluster.local.', search)).toEqual(['gw-nodes.default.svc.cluster.local.']);
  });

  it('the default resolver answers an address as itself and rejects (within its time limit) a name that does not exist', async () => {
    const { resolveAll } = await import('../../proxy/bifrost-nodes.ts');
    expect(await resolveAll('10.1.2.3', 500)).toEqual(['10.1.2.3']);
    const began = Date.now();
    await expect(resolveAll('no-such-name.invalid.', 500)).rejects.toThrow();
    await expect(resolveAll('no-such-name', 500, undefined, ['invalid', 'also.invalid'])).rejects.toThrow();
    expect(Date.now() - began).toBeLessThan(1500);
  });
});
