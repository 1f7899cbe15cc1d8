/**
 * No socket leaks: 1,000 upgrade/abort cycles — the client aborts
 * mid-handshake, the backend refuses (HTTP answer or closed port), the backend
 * dies mid-stream, normal upgrades closed by the client — and the shim's
 * open-socket count returns to its baseline, as do the backend's.
 */
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { numOpenSockets } from 'http-proxy-3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShim, type ShimHandle } from '../../proxy/shim.ts';
import { silentLogger } from '../support/silent-logger.ts';

type Mode = 'ok' | 'refuse' | 'die' | 'hang';

/** A raw TCP backend that answers WebSocket upgrades as `mode=` in the path says. */
async function startRawBackend(): Promise<{ url: string; open: () => number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let head = '';
    s.on('data', (d) => {
      if (head.includes('\r\n\r\n')) return; // already answered: echo nothing, just hold
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const mode = (/mode=(\w+)/.exec(head)?.[1] ?? 'ok') as Mode;
      if (mode === 'refuse') s.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno');
      else if (mode === 'die') {
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
        s.write(Buffer.from([0x81, 0x02, 0x34, 0x30]));
        setImmediate(() => s.destroy());
      } else if (mode === 'ok') s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      // hang: never answers
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function upgradeRequest(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: shim\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
}

/** One cycle; resolves when the client socket is closed. */
function cycle(shimUrl: string, kind: number): Promise<void> {
  const u = new URL(shimUrl);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    s.on('error', () => undefined);
    s.on('close', () => resolve());
    s.resume(); // read whatever comes, so the end of the stream is seen
    s.setTimeout(5000, () => s.destroy());
    s.on('connect', () => {
      switch (kind % 6) {
        case 0: // client aborts mid-handshake: backend still thinking
          s.write(upgradeRequest('/socket.io/?EIO=4&transport=websocket&mode=hang'));
          setTimeout(() => s.destroy(), kind % 3);
          break;
        case 1: // client aborts while still sending its request headers
          s.write('GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: shim\r\nUpgr');
          setImmediate(() => s.destroy());
          break;
        case 2: // backend refuses with an HTTP answer
          s.write(upgradeRequest('/socket.io/?EIO=4&transport=websocket&mode=refuse'));
          break;
        case 3: // backend dies mid-stream
          s.write(upgradeRequest('/socket.io/?EIO=4&transport=websocket&mode=die'));
          break;
        case 4: // a good upgrade, closed by the client after the 101
          s.write(upgradeRequest('/socket.io/?EIO=4&transport=websocket&mode=ok'));
          s.once('data', () => s.end());
          break;
        default: // upgrade off the socket.io path, passed through to the same backend, aborted at once
          s.write(upgradeRequest('/other?mode=hang'));
          setImmediate(() => s.destroy());
      }
    });
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-shim-leaks-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function settle(check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
}

describe('socket leaks', () => {
  it('after 1,000 upgrade/abort cycles the open-socket counts return to their baseline', async () => {
    const backend = await startRawBackend();
    // A Bifrost node whose port is closed: every "bifrost" decision is refused at connect and falls back.
    const deadPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const shim: ShimHandle = await startShim({
      port: 0,
      adminPort: 0,
      host: '127.0.0.1',
      godserverUrl: backend.url,
      syncUrl: backend.url,
      bifrostUrls: [`http://127.0.0.1:${deadPort}`],
      flagsFile: join(dir, 'flags.json'),
      tokenSecret: 'leaks',
      adminToken: 'leaks',
      log: silentLogger,
    });
    try {
      const baseline = { shim: shim.openSockets(), proxy: numOpenSockets(), backend: backend.open() };
      expect(baseline.shim).toEqual({ client: 0, backend: 0 });
      const total = 1000;
      const concurrency = 25;
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < total) await cycle(shim.url, next++);
        }),
      );
      await settle(() => {
        const o = shim.openSockets();
        return o.client === 0 && o.backend === 0 && backend.open() === baseline.backend && numOpenSockets() === baseline.proxy;
      });
      expect(shim.openSockets()).toEqual(baseline.shim);
      expect(backend.open()).toBe(baseline.backend);
      expect(numOpenSockets()).toBe(baseline.proxy);
      const metrics = await (await fetch(`${shim.adminUrl}/metrics`)).text();
      // every outcome was exercised
      for (const outcome of ['ok', 'rejected', 'aborted']) expect(metrics).toMatch(new RegExp(`bifrost_shim_upgrades_total\\{backend="sync",outcome="${outcome}"\\} [1-9]`));
      const rollout = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as { connections: { sync: number; bifrost: number } };
      expect(rollout.connections).toMatchObject({ sync: 0, bifrost: 0 });
    } finally {
      await shim.close();
      await backend.close();
    }
  }, 180_000);

  it('a polling session whose upgrade the backend refuses, or the client abandons, is still forgotten when idle', async () => {
    // An engine.io stand-in: polling handshakes get a sid; upgrades of sid "…-refuse" get a 400, the others no answer.
    let n = 0;
    const held = new Set<net.Socket>();
    const backend = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' });
      res.end(`0{"sid":"s${n++}-${/kind=(\w+)/.exec(req.url ?? '')?.[1]}","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}`);
    });
    backend.on('upgrade', (req, socket: net.Socket) => {
      socket.on('error', () => undefined);
      if ((req.url ?? '').includes('-refuse')) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno');
      else held.add(socket);
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const backendUrl = `http://127.0.0.1:${(backend.address() as net.AddressInfo).port}`;
    const shim: ShimHandle = await startShim({
      port: 0,
      adminPort: 0,
      host: '127.0.0.1',
      godserverUrl: backendUrl,
      syncUrl: backendUrl,
      bifrostUrls: [],
      flagsFile: join(dir, 'flags-polling.json'),
      tokenSecret: 'leaks',
      adminToken: 'leaks',
      // Long enough that a stall of the (loaded, 2-core) machine cannot sweep the sessions before the
      // upgrades below ran (which would skip the path under test); the wait below is bounded by a deadline.
      pollingIdleMs: 5000,
      log: silentLogger,
    });
    const polling = async (): Promise<number> => ((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as { connections: { polling: number } }).connections.polling;
    const liveGauge = async (): Promise<number> =>
      (await (await fetch(`${shim.adminUrl}/metrics`)).text())
        .split('\n')
        .filter((l) => l.startsWith('bifrost_shim_live_connections{'))
        .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    /** Sends an upgrade for `sid`; resolves with the status line (or '' when the client gives up first). */
    const upgrade = (sid: string, abandonAfterMs?: number): Promise<string> =>
      new Promise((resolve) => {
        const u = new URL(shim.url);
        const s = net.connect(Number(u.port), u.hostname, () => s.write(upgradeRequest(`/socket.io/?EIO=4&transport=websocket&sid=${sid}`)));
        let got = '';
        s.on('data', (d) => (got += d.toString('latin1')));
        s.on('error', () => undefined);
        s.on('close', () => resolve(got.split('\r\n')[0] ?? ''));
        if (abandonAfterMs !== undefined) setTimeout(() => s.destroy(), abandonAfterMs);
      });
    try {
      const sids: string[] = [];
      for (const kind of ['refuse', 'abandon']) {
        const hs = await (await fetch(`${shim.url}/socket.io/?EIO=4&transport=polling&kind=${kind}`)).text();
        sids.push(/"sid":"([^"]+)"/.exec(hs)![1]!);
      }
      expect(await polling()).toBe(2);
      expect(await upgrade(sids[0]!)).toBe('HTTP/1.1 400 Bad Request');
      expect(await upgrade(sids[1]!, 200)).toBe('');
      // Still there (not swept before the upgrades ran): the path under test was taken.
      expect(await polling()).toBe(2);
      // Neither became a WebSocket: both are idle polling sessions, swept after pollingIdleMs.
      const deadline = Date.now() + 30_000;
      while (((await polling()) > 0 || (await liveGauge()) > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await polling()).toBe(0);
      expect(await liveGauge()).toBe(0);
      // Forgotten, not evicted: a late request of the session is routed afresh (the backend answers it).
      expect((await fetch(`${shim.url}/socket.io/?EIO=4&transport=polling&sid=${sids[0]}`)).status).toBe(200);
    } finally {
      await shim.close();
      for (const s of held) s.destroy();
      await new Promise<void>((r) => backend.close(() => r()));
    }
  }, 60_000);
});
