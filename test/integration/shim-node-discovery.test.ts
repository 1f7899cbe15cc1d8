/**
 * Node discovery: `--bifrost dns+http://name:port` makes every address of a
 * DNS name (a Kubernetes headless Service: one record per ready gateway pod) a
 * node of its own, re-resolved before every /load round. Two stand-in gateways
 * listen on the same port of 127.0.0.1 and 127.0.0.2 (like two pods), and the
 * name's answer is changed as pods would come and go.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { signRouteToken } from '../../proxy/route-token.ts';
import { startTestShim } from '../support/test-shim.ts';
import { shimOptionsFromCli } from '../../cli/commands/shim.ts';
import { resolveShimOptions } from '../../proxy/shim.ts';
import { silentLogger } from '../support/silent-logger.ts';

interface Pod {
  close(): Promise<void>;
}

/** A gateway stand-in answering /load with its node id (and whether it drains), and accepting WebSocket upgrades (it holds them open). */
async function startPod(host: string, port: number, node: string, state: { draining: boolean }): Promise<{ port: number } & Pod> {
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/load' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(req.url === '/load' ? JSON.stringify({ node, loadFactor: 0.2, draining: state.draining, broker: 'redis' }) : '{}');
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => undefined);
    wss.handleUpgrade(req, socket, head, () => undefined);
  });
  server.on('close', () => {
    for (const c of wss.clients) c.terminate();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        server.close(() => r());
      }),
  };
}

async function until(what: string, check: () => Promise<boolean>, limitMs = 5000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let dir: string;
const pods: Pod[] = [];
let port = 0;
const drainingB = { draining: false };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-discovery-'));
  // Two "pods" on one port, as behind a headless Service (retry if 127.0.0.2 has the port taken).
  for (let attempt = 0; attempt < 5 && pods.length < 2; attempt++) {
    const a = await startPod('127.0.0.1', 0, 'gw-a', { draining: false });
    try {
      const b = await startPod('127.0.0.2', a.port, 'gw-b', drainingB);
      pods.push(a, b);
      port = a.port;
    } catch {
      await a.close();
    }
  }
  if (pods.length < 2) throw new Error('could not bind two loopback addresses on one port');
});
afterAll(async () => {
  await Promise.all(pods.map((p) => p.close()));
  await rm(dir, { recursive: true, force: true });
});

interface NodesDoc {
  connections: { nodes: Array<{ id: string; url: string; reachable: boolean | null; draining: boolean }> };
}

describe('Bifrost node discovery (dns+)', () => {
  it('polls every address of the name as a node of its own, and follows pods coming and going; a failed lookup keeps the last nodes', async () => {
    let answer: string[] | Error = ['127.0.0.1', '127.0.0.2'];
    const lookups: string[] = [];
    const { shim } = await startTestShim(
      { dir, syncUrl: 'http://127.0.0.1:9', bifrostUrls: [`dns+http://gateways.bifrost.test:${port}`], tokenSecret: 'discovery-secret', adminToken: 'discovery-admin' },
      { percent: 100 },
      {
        godserverUrl: 'http://127.0.0.1:9',
        loadPollIntervalMs: 100,
        resolveHost: async (host) => {
          lookups.push(host);
          if (answer instanceof Error) throw answer;
          return answer;
        },
      },
    );
    const nodes = async () => ((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as NodesDoc).connections.nodes;
    try {
      expect(lookups[0]).toBe('gateways.bifrost.test');
      expect((await nodes()).map((n) => [n.id, n.url, n.reachable]).sort()).toEqual([
        ['gw-a', `http://127.0.0.1:${port}`, true],
        ['gw-b', `http://127.0.0.2:${port}`, true],
      ]);
      // Each pod reports for itself: one draining pod does not make the other ineligible.
      drainingB.draining = true;
      await until('gw-b draining, gw-a not', async () => {
        const n = await nodes();
        return n.find((x) => x.id === 'gw-b')?.draining === true && n.find((x) => x.id === 'gw-a')?.draining === false;
      });
      drainingB.draining = false;
      // A pod leaves the Service (scaled down, or unready): its node goes.
      answer = ['127.0.0.1'];
      await until('one node', async () => (await nodes()).length === 1);
      expect((await nodes())[0]!.id).toBe('gw-a');
      // DNS fails: the last known nodes stay.
      answer = new Error('getaddrinfo ENOTFOUND gateways.bifrost.test');
      const seen = lookups.length;
      await until('looked up again', async () => lookups.length > seen + 2);
      expect((await nodes()).map((n) => n.id)).toEqual(['gw-a']);
      // The pod comes back.
      answer = ['127.0.0.2', '127.0.0.1'];
      await until('two nodes again', async () => (await nodes()).length === 2);
      await until('gw-b polled', async () => (await nodes()).some((n) => n.id === 'gw-b' && n.reachable === true));
    } finally {
      await shim.close();
    }
  });

  it('drains by id a node that left the name while the shim still holds sockets to it; an id it never saw is a clear 400', async () => {
    let answer = ['127.0.0.1', '127.0.0.2'];
    const routeSecret = 'discovery-route-secret';
    const { shim } = await startTestShim(
      { dir, syncUrl: 'http://127.0.0.1:9', bifrostUrls: [`dns+http://gateways.bifrost.test:${port}`], tokenSecret: 'discovery-secret', adminToken: 'discovery-admin' },
      { percent: 100 },
      { godserverUrl: 'http://127.0.0.1:9', loadPollIntervalMs: 100, routeSecret, resolveHost: async () => answer },
    );
    const sockets: WebSocket[] = [];
    const rollout = async () => (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as { connections: { bifrost: number; nodes: { id: string; connections: number; reachable: boolean | null }[] } };
    const drain = (body: unknown) =>
      fetch(`${shim.adminUrl}/api/drain`, { method: 'POST', headers: { authorization: 'Bearer discovery-admin', 'content-type': 'application/json' }, body: JSON.stringify(body) });
    try {
      await until('both nodes polled', async () => (await rollout()).connections.nodes.filter((n) => n.reachable).length === 2);
      // Users spread over both pods (each user's node is a hash of the user): 12 sockets through the shim.
      for (let i = 0; i < 12; i++) {
        const bf = signRouteToken(routeSecret, { userId: `drain-user-${i}`, teamId: 't' }, 3600);
        const ws = new WebSocket(`${shim.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&bf_route=${bf}`);
        ws.on('error', () => undefined);
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        sockets.push(ws);
      }
      const onB = (await rollout()).connections.nodes.find((n) => n.id === 'gw-b')!.connections;
      expect(onB).toBeGreaterThan(0);
      // gw-b leaves the Service, but its pod still runs and holds its sockets.
      answer = ['127.0.0.1'];
      await until('gw-b gone from the pool', async () => (await rollout()).connections.nodes.length === 1);
      expect((await rollout()).connections.bifrost).toBe(12);

      const unknown = await drain({ node: 'gw-never-seen', scope: 'all' });
      expect(unknown.status).toBe(400);
      expect(((await unknown.json()) as { error: { message: string } }).error.message).toBe(
        'unknown Bifrost node "gw-never-seen": neither a node of the pool (gw-a) nor one this shim holds connections to',
      );
      const res = await drain({ node: 'gw-b', scope: 'all' });
      expect(res.status).toBe(202);
      expect(((await res.json()) as { queued: number }).queued).toBe(onB);
      await until('gw-b sockets closed', async () => sockets.filter((w) => w.readyState === WebSocket.CLOSED).length === onB);
      // The client sees its socket closed a moment before the shim has dropped it from its registry.
      await until('the shim to count the rest', async () => (await rollout()).connections.bifrost === 12 - onB);
      // Once none is left, the id is unknown again.
      expect((await drain({ node: 'gw-b' })).status).toBe(400);
    } finally {
      for (const w of sockets) w.terminate();
      await shim.close();
    }
  });

  it('the command line takes dns+ names with an explicit port, in proxied mode only', () => {
    const base = { godserver: 'http://g:1', sync: 'http://s:1', mode: 'proxied', publicUrl: 'https://sync.example.com', fallback: 'sync', rebalanceRate: '100', drain: 'close', shutdownWindow: '10000' };
    expect(shimOptionsFromCli({ ...base, bifrost: 'dns+http://bifrost-gateway-nodes.default.svc:8080' }).bifrostUrls).toEqual(['dns+http://bifrost-gateway-nodes.default.svc:8080']);
    expect(() => shimOptionsFromCli({ ...base, bifrost: 'dns+http://bifrost-gateway-nodes.default.svc' })).toThrow(/^--bifrost .*needs an explicit port/);
    expect(() => shimOptionsFromCli({ ...base, mode: 'direct', bifrost: 'dns+http://bifrost-gateway-nodes.default.svc:8080' })).toThrow(/^--bifrost .*direct mode/);
    expect(() => shimOptionsFromCli({ ...base, bifrost: 'dns+ftp://x:1' })).toThrow(/^--bifrost must be an http\(s\) URL/);
    // Discovered nodes are pod IPs, which certificates do not name: plain http inside the cluster only.
    expect(() => shimOptionsFromCli({ ...base, bifrost: 'dns+https://bifrost-gateway-nodes.default.svc.cluster.local.:8443' })).toThrow(
      /^--bifrost "dns\+https:\/\/[^"]+": dns\+https is not supported: .*use dns\+http:\/\//,
    );
    expect(() => shimOptionsFromCli({ ...base, bifrost: 'dns+https://n:8443' })).toThrow(expect.objectContaining({ exitCode: 2 }));
    expect(() => shimOptionsFromCli({ ...base, bifrost: 'https://gw.example.com' })).not.toThrow();
    expect(() => resolveShimOptions({ port: 0, adminPort: 0, godserverUrl: 'http://g:1', syncUrl: 'http://s:1', bifrostUrls: ['dns+http://n:8080'], log: silentLogger })).not.toThrow();
  });

  it('refuses a flags start timeout that is not a positive whole number (0 would wait forever)', () => {
    const o = { port: 0, adminPort: 0, godserverUrl: 'http://g:1', syncUrl: 'http://s:1', bifrostUrls: [], log: silentLogger };
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => resolveShimOptions({ ...o, flagsStartTimeoutMs: bad })).toThrow(/^flagsStartTimeoutMs must be a positive whole number of milliseconds/);
    }
    expect(resolveShimOptions({ ...o, flagsStartTimeoutMs: 1 }).flagsStartTimeoutMs).toBe(1);
    expect(resolveShimOptions(o).flagsStartTimeoutMs).toBe(5000);
  });
});
