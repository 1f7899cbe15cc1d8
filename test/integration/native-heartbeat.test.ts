/**
 * The native endpoint's heartbeat against a real gateway node: sockets are
 * pinged once per interval, spread over it (not all in one turn), and a socket
 * that stops answering is dropped while the others stay.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RunningGateway } from '../../gateway/gateway.ts';
import { startTestGateway, token } from '../support/gateway.ts';

const INTERVAL_MS = 3000; // three ticks of about a second each

let gw: RunningGateway;
beforeAll(async () => {
  gw = await startTestGateway({ pingIntervalMs: INTERVAL_MS });
});
afterAll(async () => {
  await gw?.close();
});

interface Probe {
  ws: WebSocket;
  pings: number[];
  closedAt?: number;
}

async function open(user: string, autoPong: boolean): Promise<Probe> {
  const ws = new WebSocket(`${gw.publicUrl.replace(/^http/, 'ws')}/ws?token=${await token(user, 't1')}`, { autoPong });
  const probe: Probe = { ws, pings: [] };
  ws.on('ping', () => probe.pings.push(Date.now()));
  ws.on('close', () => (probe.closedAt = Date.now()));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return probe;
}

describe('native heartbeat', () => {
  it('pings every socket about once per interval, spread over the interval, and drops one that stops answering', async () => {
    const live = await Promise.all(Array.from({ length: 9 }, (_, i) => open(`hb-live-${i}`, true)));
    const mute = await open('hb-mute', false);
    const started = Date.now();
    // Long enough for each socket to be visited at least twice, and for the mute one to be dropped on its second visit.
    await new Promise((r) => setTimeout(r, 2.5 * INTERVAL_MS + 1200));

    for (const p of live) {
      expect(p.closedAt, 'an answering socket stays open').toBeUndefined();
      expect(p.pings.length).toBeGreaterThanOrEqual(2);
      // About once per interval (one tick of slack either way), never a burst.
      for (let i = 1; i < p.pings.length; i++) {
        const gap = p.pings[i]! - p.pings[i - 1]!;
        expect(gap).toBeGreaterThan(INTERVAL_MS - 1500);
        expect(gap).toBeLessThan(INTERVAL_MS + 1500);
      }
    }
    // Spread: the first pings of the ten sockets fall in more than one tick.
    const firstPings = [...live, mute].map((p) => p.pings[0]!).sort((a, b) => a - b);
    expect(firstPings.every((t) => t >= started - INTERVAL_MS)).toBe(true);
    expect(firstPings[firstPings.length - 1]! - firstPings[0]!).toBeGreaterThan(500);

    expect(mute.pings.length).toBeGreaterThanOrEqual(1);
    expect(mute.closedAt, 'a socket that never answers a ping is dropped').toBeDefined();
    expect(mute.closedAt! - mute.pings[0]!).toBeGreaterThan(INTERVAL_MS - 1500);

    for (const p of live) p.ws.close();
  }, 20_000);
});
