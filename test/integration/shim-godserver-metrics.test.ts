/**
 * godserver_requests_total counts each init request once: a non-200 answer is
 * counted by its status when relayed; if its body then stalls past the timeout,
 * the cut is not counted a second time as status="error".
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShim } from '../../proxy/shim.ts';
import { silentLogger } from '../support/silent-logger.ts';

let dir: string;
let godserver: http.Server;
let godserverUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-godserver-metrics-'));
  godserver = http.createServer((_req, res) => {
    // A 404 whose body starts, then stalls (never ends).
    res.writeHead(404, { 'content-type': 'application/json' });
    res.write('{"error":');
  });
  await new Promise<void>((r) => godserver.listen(0, '127.0.0.1', r));
  godserverUrl = `http://127.0.0.1:${(godserver.address() as AddressInfo).port}`;
});
afterAll(async () => {
  godserver.closeAllConnections();
  await new Promise<void>((r) => godserver.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

describe('Godserver request metrics', () => {
  it('counts a non-200 answer whose body stalls past the timeout once, by its status', async () => {
    const s = await startShim({ port: 0, adminPort: 0, host: '127.0.0.1', godserverUrl, syncUrl: godserverUrl, bifrostUrls: [], flagsFile: join(dir, 'flags.json'), tokenSecret: 't', adminToken: 'a', godserverTimeoutMs: 300, log: silentLogger });
    try {
      const outcome = await new Promise<{ status: number; cut: boolean }>((resolve) => {
        const req = http.get(`${s.url}/godserver/init`, { agent: false }, (res) => {
          res.on('data', () => undefined);
          res.on('error', () => resolve({ status: res.statusCode ?? 0, cut: true }));
          res.on('aborted', () => resolve({ status: res.statusCode ?? 0, cut: true }));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, cut: false }));
        });
        req.on('error', () => resolve({ status: 0, cut: true }));
      });
      // The status was relayed, then the connection cut (a half-sent answer must not look whole).
      expect(outcome).toEqual({ status: 404, cut: true });
      await new Promise((r) => setTimeout(r, 100));
      const metrics = (await (await fetch(`${s.adminUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith('bifrost_shim_godserver_requests_total{'));
      expect(metrics).toEqual(['bifrost_shim_godserver_requests_total{status="404",rewritten="false"} 1']);
    } finally {
      await s.close();
    }
  });
});
