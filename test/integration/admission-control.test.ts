/**
 * Admission control: a node whose load factor passes 1.0 refuses new
 * connections with 503 and Retry-After and reports not ready, while the
 * sockets it already holds keep working. Load is inflated through the
 * test/drill-only `loadInflate` option.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { NativeClient } from '../support/native-client.ts';
import { privateCall, startTestGateway, token } from '../support/gateway.ts';

describe('admission control', () => {
  it('refuses new upgrades above load factor 1.0 and keeps existing sockets', async () => {
    // connections target 2: the third client pushes the node over 1.0.
    const gw = await startTestGateway({ load: { connections: 2 } });
    try {
      const t = await token('adm', 't');
      const a = await NativeClient.connect(gw.publicUrl, t);
      const b = await NativeClient.connect(gw.publicUrl, t);
      const c = await NativeClient.connect(gw.publicUrl, t);
      await a.call({ op: 'subscribe', topic: 'user:adm' });
      gw.ctx.load.refresh();
      const load = await (await fetch(gw.publicUrl + '/load')).json();
      expect(load).toMatchObject({ binding: 'connections', loadFactor: 1.5, connections: 3 });
      const res = await new Promise<{ status: number; retryAfter?: string }>((resolve) => {
        const ws = new WebSocket(gw.publicUrl.replace('http', 'ws') + '/ws?token=' + t);
        ws.on('unexpected-response', (_req, r) => {
          resolve({ status: r.statusCode!, retryAfter: r.headers['retry-after'] as string | undefined });
          ws.terminate();
        });
        ws.on('open', () => resolve({ status: 101 }));
        ws.on('error', () => {});
      });
      expect(res.status).toBe(503);
      expect(Number(res.retryAfter)).toBeGreaterThan(0);
      expect((await fetch(gw.publicUrl + '/readyz')).status).toBe(503);
      // Existing sockets are untouched.
      await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:adm', event: 'e', data: 'still here' });
      expect((await a.waitFor((f) => f.op === 'event')).data).toBe('still here');
      expect(await b.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
      // Load back under the target: admitted again.
      c.close();
      b.close();
      await new Promise((r) => setTimeout(r, 100));
      gw.ctx.load.refresh();
      const again = await NativeClient.connect(gw.publicUrl, t);
      expect(await again.call({ op: 'ping' })).toMatchObject({ op: 'pong' });
      expect((await fetch(gw.publicUrl + '/readyz')).status).toBe(200);
      a.close();
      again.close();
    } finally {
      await gw.close();
    }
  });

  it('reports which dimension binds when a drill inflates one', async () => {
    const gw = await startTestGateway({ loadInflate: { eventLoopDelay: 1.2 } });
    try {
      const load = await (await fetch(gw.publicUrl + '/load')).json();
      expect(load.binding).toBe('eventLoopDelay');
      expect(load.loadFactor).toBeGreaterThan(1);
      expect(Object.keys(load.dimensions).sort()).toEqual(['connections', 'cpu', 'eventLoopDelay', 'heap', 'outboundBuffered', 'rss']);
      const metrics = await (await fetch(gw.publicUrl + '/metrics')).text();
      expect(metrics).toMatch(/bifrost_load_dimension_ratio\{[^}]*dimension="eventLoopDelay"[^}]*\} 1\.2/);
      const nodes = await privateCall(gw.privateUrl, 'GET', '/v1/nodes');
      expect(nodes.body.nodes[0].loadFactor).toBeGreaterThan(1);
    } finally {
      await gw.close();
    }
  });
});
