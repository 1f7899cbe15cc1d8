/**
 * A shim whose flags never load must say so: an invalid LD_SDK_KEY (LaunchDarkly
 * answers 401, the SDK gives up for good) or an unreachable LaunchDarkly leaves
 * every user on Sync. The shim keeps serving (Sync), `/healthz` stays alive,
 * and `GET /api/rollout`, `/readyz`, the metrics and one error log line report
 * the flag source as not loaded and why. A local HTTP server stands in for
 * LaunchDarkly's streaming and polling endpoints.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startShim, type ShimHandle, type ShimOptions } from '../../proxy/shim.ts';
import { FLAG_KEY, buildFlag } from '../../proxy/flags-file.ts';

interface FakeLd {
  url: string;
  requests: string[];
  /** What the stand-in answers from now on. */
  answer: 'unauthorized' | 'unavailable' | 'flags';
  /** Ends every open stream (the SDK reconnects). */
  drop(): void;
  close(): Promise<void>;
}

/** LaunchDarkly's streaming (`/all`) and polling (`/sdk/latest-all`) endpoints, answering as told. */
async function startFakeLd(answer: FakeLd['answer']): Promise<FakeLd> {
  const open = new Set<http.ServerResponse>();
  const fake = { requests: [] as string[], answer } as FakeLd;
  const flags = { flags: { [FLAG_KEY]: buildFlag({ percent: 100, bucketBy: 'user' }, 'status-salt', 1) }, segments: {} };
  const server = http.createServer((req, res) => {
    fake.requests.push(req.url ?? '');
    if (fake.answer === 'unauthorized') {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"message":"invalid SDK key"}');
    } else if (fake.answer === 'unavailable') {
      res.writeHead(503);
      res.end();
    } else if ((req.url ?? '').startsWith('/all')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: put\ndata: ${JSON.stringify({ path: '/', data: flags })}\n\n`);
      open.add(res);
      res.on('close', () => open.delete(res));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(flags));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.drop = () => {
    for (const s of open) s.destroy();
  };
  fake.close = () =>
    new Promise<void>((r) => {
      for (const s of open) s.destroy();
      server.close(() => r());
    });
  return fake;
}

/** A Godserver stand-in: every token is user u1 of team t1. */
async function startGodserver(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ user: { id: 'u1', teamId: 't1' }, syncserver_url: 'http://127.0.0.1:1', retryAfterInSeconds: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A pino logger whose JSON lines are kept. */
function capturingLogger(): { log: pino.Logger; lines: Array<{ level: number; msg: string; component?: string }> } {
  const lines: Array<{ level: number; msg: string; component?: string }> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

async function until(what: string, check: () => Promise<boolean> | boolean, limitMs = 8000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface RolloutDoc {
  source: string;
  flagSource: { state: string; ready: boolean; error: string | null; since: string };
  decisions: { sync: number; bifrost: number; byReason: Record<string, number> };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A shim in front of a stub Godserver, its flags from `flags` (LaunchDarkly SDK options or a flags file). */
async function shimWith(flags: Pick<ShimOptions, 'ldSdkKey' | 'ldSdkOptions' | 'flagsFile' | 'flagsStartTimeoutMs'>, log: pino.Logger): Promise<ShimHandle> {
  const godserver = await startGodserver();
  cleanups.push(godserver.close);
  const shim = await startShim({
    port: 0,
    adminPort: 0,
    host: '127.0.0.1',
    godserverUrl: godserver.url,
    syncUrl: godserver.url,
    bifrostUrls: [],
    tokenSecret: 'status-test-secret',
    adminToken: 'status-admin',
    ...flags,
    log,
  });
  cleanups.push(() => shim.close());
  return shim;
}

function shimAgainst(ld: FakeLd, log: pino.Logger, extraSdk: Record<string, unknown> = {}): Promise<ShimHandle> {
  return shimWith(
    {
      ldSdkKey: 'sdk-invalid-key',
      ldSdkOptions: { baseUri: ld.url, streamUri: ld.url, eventsUri: ld.url, sendEvents: false, diagnosticOptOut: true, ...extraSdk },
      flagsStartTimeoutMs: 1000,
    },
    log,
  );
}

async function metric(shim: ShimHandle, line: string): Promise<number | undefined> {
  const text = await (await fetch(`${shim.adminUrl}/metrics`)).text();
  const hit = text.split('\n').find((l) => l.startsWith(line + ' '));
  return hit === undefined ? undefined : Number(hit.slice(line.length + 1));
}

describe('flag source status', () => {
  for (const transport of ['streaming', 'polling'] as const) {
    it(`an invalid LD_SDK_KEY (LaunchDarkly answers 401, ${transport}): reported failed with the reason, not ready, counted, logged once; users go to Sync; the shim keeps serving`, async () => {
      const ld = await startFakeLd('unauthorized');
      cleanups.push(ld.close);
      const { log, lines } = capturingLogger();
      const shim = await shimAgainst(ld, log, transport === 'polling' ? { stream: false } : {});

      const rollout = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc;
      expect(rollout.source).toBe('launchdarkly');
      expect(rollout.flagSource).toMatchObject({ state: 'failed', ready: false });
      expect(rollout.flagSource.error).toMatch(/Authentication failed|401/);

      const ready = await fetch(`${shim.adminUrl}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('unavailable');
      expect(body.error.message).toMatch(/LaunchDarkly not loaded \(failed: .*(Authentication failed|401)/);
      // Liveness is not readiness: restarting would not fix the key.
      expect((await fetch(`${shim.adminUrl}/healthz`)).status).toBe(200);

      expect(await metric(shim, 'bifrost_shim_flag_source_ready{source="launchdarkly"}')).toBe(0);
      expect(await metric(shim, 'bifrost_shim_flag_source_failures_total{source="launchdarkly",reason="failed"}')).toBe(1);

      const failures = lines.filter((l) => l.level >= 50 && l.component === undefined && /flags failed to load/.test(l.msg));
      expect(failures).toHaveLength(1);
      expect(failures[0]!.msg).toMatch(/Authentication failed|401/);

      // Routing still works, to Sync, by a "not ready" decision; the SDK stops asking after the 401.
      for (let i = 0; i < 3; i++) {
        const init = await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': 'whatever' } });
        expect(init.status).toBe(200);
        expect(init.headers.get('x-bifrost-route')).toBe('sync');
      }
      const after = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc;
      expect(after.decisions.byReason.not_ready).toBe(3);
      expect(after.decisions.bifrost).toBe(0);
      const asked = ld.requests.length;
      await new Promise((r) => setTimeout(r, 300));
      expect(ld.requests.length).toBe(asked);
      expect(await metric(shim, 'bifrost_shim_flag_source_failures_total{source="launchdarkly",reason="failed"}')).toBe(1);
    });
  }

  it('LaunchDarkly unreachable at start: initializing with the reason and not ready; once it answers, ready and routing by the flag', async () => {
    const ld = await startFakeLd('unavailable');
    cleanups.push(ld.close);
    const { log, lines } = capturingLogger();
    const shim = await shimAgainst(ld, log, { streamInitialReconnectDelay: 0.05 });

    const before = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc;
    expect(before.flagSource).toMatchObject({ state: 'initializing', ready: false });
    expect(before.flagSource.error).toMatch(/not loaded within 1000 ms.*503/);
    expect((await fetch(`${shim.adminUrl}/readyz`)).status).toBe(503);
    expect(await metric(shim, 'bifrost_shim_flag_source_failures_total{source="launchdarkly",reason="start_timeout"}')).toBe(1);
    expect(lines.filter((l) => l.level >= 50 && l.component === undefined && /flags not loaded yet/.test(l.msg))).toHaveLength(1);
    const init = await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': 'whatever' } });
    expect(init.headers.get('x-bifrost-route')).toBe('sync');

    ld.answer = 'flags';
    await until('flags loaded', async () => (await fetch(`${shim.adminUrl}/readyz`)).status === 200, 15_000);
    const after = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc;
    expect(after.flagSource).toMatchObject({ state: 'ready', ready: true, error: null });
    expect(await metric(shim, 'bifrost_shim_flag_source_ready{source="launchdarkly"}')).toBe(1);
    // The flag (100 %) is in force now: the decision is a flag evaluation (no Bifrost node here, so the socket would fall back).
    await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': 'whatever' } });
    const last = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc;
    expect(last.decisions.byReason.flag).toBe(1);
  }, 30_000);

  it('a key revoked after the flags loaded (401 on reconnect): still ready with the last flags, the reason shown, logged once and counted', async () => {
    const ld = await startFakeLd('flags');
    cleanups.push(ld.close);
    const { log, lines } = capturingLogger();
    const shim = await shimAgainst(ld, log, { streamInitialReconnectDelay: 0.05 });
    expect((await fetch(`${shim.adminUrl}/readyz`)).status).toBe(200);
    ld.answer = 'unauthorized';
    ld.drop();
    await until('updates stopped', async () => ((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc).flagSource.error !== null);
    const doc = (await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc;
    expect(doc.flagSource).toMatchObject({ state: 'ready', ready: true });
    expect(doc.flagSource.error).toMatch(/^flag updates stopped: .*(Authentication failed|401)/);
    expect((await fetch(`${shim.adminUrl}/readyz`)).status).toBe(200);
    expect(await metric(shim, 'bifrost_shim_flag_source_failures_total{source="launchdarkly",reason="failed"}')).toBe(1);
    expect(lines.filter((l) => l.level >= 50 && l.component === undefined && /flag updates stopped/.test(l.msg))).toHaveLength(1);
    // The last flags (100 %) still decide.
    await fetch(`${shim.url}/godserver/init`, { headers: { 'x-access-token': 'whatever' } });
    expect(((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc).decisions.byReason.flag).toBe(1);
  }, 20_000);

  it('the flags file: ready at once, /readyz 200', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bifrost-status-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const shim = await shimWith({ flagsFile: join(dir, 'flags.json') }, pino({ level: 'silent' }));
    const ready = await fetch(`${shim.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, flagSource: { state: 'ready', ready: true, error: null } });
    expect(((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as RolloutDoc).flagSource.state).toBe('ready');
    expect(await metric(shim, 'bifrost_shim_flag_source_ready{source="file"}')).toBe(1);
  });
});
