/**
 * SIGTERM drain: readiness goes false, new connections are refused, clients
 * get reconnect frames spread over the window (not all at once) and are
 * closed with 1012 by its end; the process exits when all are gone.
 */
import { describe, expect, it } from 'vitest';
import { NativeClient, upgradeStatus } from '../support/native-client.ts';
import { spawnGateway, startTestGateway, token } from '../support/gateway.ts';

describe('graceful drain', () => {
  it('spreads reconnect frames for 100 clients over the window and closes all with 1012', async () => {
    const gw = await startTestGateway();
    const t = await token('drain-user', 'dt');
    const clients = await Promise.all(Array.from({ length: 100 }, () => NativeClient.connect(gw.publicUrl, t)));
    const got: number[] = [];
    const closes: Promise<number>[] = [];
    for (const c of clients) {
      c.ws.on('message', (d) => {
        if (JSON.parse(String(d)).op === 'reconnect') got.push(Date.now());
      });
      closes.push(c.waitClose(15_000));
    }
    const windowMs = 4000;
    const started = Date.now();
    const drained = gw.drain(windowMs);
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(gw.publicUrl + '/readyz')).status).toBe(503);
    expect(await upgradeStatus(gw.publicUrl + '/ws?token=' + t)).toBe(503);
    const codes = await Promise.all(closes);
    await drained;
    const elapsed = Date.now() - started;
    expect(codes.every((c) => c === 1012)).toBe(true);
    expect(got).toHaveLength(100);
    const inFirstSecond = got.filter((at) => at - started < 1000).length;
    const spanMs = Math.max(...got) - Math.min(...got);
    console.log(`drain: ${inFirstSecond}/100 reconnect frames in the first second, spread over ${spanMs} ms of a ${windowMs} ms window`);
    expect(inFirstSecond).toBeLessThan(60);
    expect(spanMs).toBeGreaterThan(windowMs / 2);
    expect(elapsed).toBeLessThan(windowMs + 5000);
    const frames = clients.flatMap((c) => c.frames.filter((f) => f.op === 'reconnect'));
    expect(frames.every((f) => f.reason === 'drain' && typeof f.afterMs === 'number')).toBe(true);
    await gw.close();
  });

  it('drains and exits 0 on SIGTERM when run as a process', async () => {
    const gw = await spawnGateway({}, ['--drain-window', '2s']);
    const t = await token('sig-user', 'st');
    const clients = await Promise.all(Array.from({ length: 10 }, () => NativeClient.connect(gw.publicUrl, t)));
    const code = gw.stop('SIGTERM');
    const closes = await Promise.all(clients.map((c) => c.waitClose(10_000)));
    expect(closes.every((c) => c === 1012)).toBe(true);
    expect(await code).toBe(0);
  });
});
