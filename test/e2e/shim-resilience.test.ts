/**
 * A real `bifrost shim` process in front of a misbehaving Godserver and a
 * flags file that turns bad: it answers each broken request (502, or a cut
 * connection), keeps serving the next one, and never exits. Also: numeric user
 * and team ids from the Godserver, the Godserver timing out after its headers
 * (in-process: the CLI has no timeout flag), and the refusal to start in
 * proxied mode on a wildcard address without a public URL.
 */
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAG_KEY, buildFlag, writeFileAtomic, writeRollout } from '../../proxy/flags-file.ts';
import { startShim } from '../../proxy/shim.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { BIN, readyJson, spawnBifrost, type Running } from '../support/cli-stack.ts';
import { freePort } from '../support/redis-server.ts';

const PUBLIC_URL = 'http://shim.example.test:3000';
const ADMIN = 'resilience-admin';

/**
 * A Godserver stand-in whose behaviour is chosen by the `x-access-token` the client sends:
 * `ok-<user>` a normal answer, `numeric` numeric ids, `reset` headers and half a body then a
 * TCP reset, `stall` headers and half a body then nothing.
 */
async function startStubGodserver(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const token = String(req.headers['x-access-token'] ?? '');
    const answer = (user: unknown): string => JSON.stringify({ user, syncserver_url: 'http://sync.invalid:1337', flags: { sync: true }, retryAfterInSeconds: 300 });
    if (token.startsWith('ok-')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer({ id: token.slice(3), teamId: 'team-a' }));
    } else if (token === 'numeric') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer({ id: 42, teamId: 7 }));
    } else if (token === 'reset' || token === 'stall') {
      const body = answer({ id: 'u-broken', teamId: 'team-a' });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.write(body.slice(0, 20));
      if (token === 'reset') setTimeout(() => req.socket.resetAndDestroy(), 50);
    } else {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":"unauthorized"}');
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** GET /godserver/init with a raw http.request (so the test can hang up mid-way). */
function init(shimUrl: string, token: string): Promise<{ status: number; route: string | undefined; body: string }> {
  return new Promise((resolveInit, reject) => {
    const req = http.get(`${shimUrl}/godserver/init`, { headers: { 'x-access-token': token }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolveInit({ status: res.statusCode ?? 0, route: res.headers['x-bifrost-route'] as string | undefined, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

let dir: string;
let godserver: Awaited<ReturnType<typeof startStubGodserver>>;
let running: Running | undefined;
let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
const stderr = () => running?.stderr() ?? '';
/** Where the test reaches the shim (its public URL names a host clients would resolve). */
let shim: { url: string; adminUrl: string };
let flagsFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-shim-resilience-'));
  flagsFile = join(dir, 'flags.json');
  await writeRollout(flagsFile, { percent: 100, bucketBy: 'user' });
  godserver = await startStubGodserver();
  // The shim prints its public URL (a name clients would resolve): pick the port to reach it locally.
  const port = await freePort();
  running = spawnBifrost(
    ['shim', '--godserver', godserver.url, '--sync', godserver.url, '--bifrost', 'http://127.0.0.1:9', '--port', String(port), '--admin-port', '0', '--host', '127.0.0.1', '--public-url', PUBLIC_URL, '--flags-file', flagsFile, '--json'],
    { cwd: dir, env: { ...process.env, BIFROST_ADMIN_TOKEN: ADMIN, BIFROST_TOKEN_SECRET: 'resilience-secret', LOG_LEVEL: 'error' }, longLived: true },
  );
  void running.exited.then((e) => (exit = e));
  const info = await readyJson<{ url: string; adminUrl: string }>(running, 'bifrost shim');
  expect(info.url).toBe(PUBLIC_URL);
  shim = { url: `http://127.0.0.1:${port}`, adminUrl: info.adminUrl };
}, 90_000);

afterAll(async () => {
  if (running && !exit) {
    running.child.kill('SIGKILL');
    await running.exited;
  }
  await godserver?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The shim process is still up and answers a normal init, rewritten. */
async function stillServing(user: string): Promise<void> {
  expect(exit, `the shim exited: ${stderr()}`).toBeUndefined();
  const ok = await init(shim.url, `ok-${user}`);
  expect(ok.status).toBe(200);
  expect(JSON.parse(ok.body).syncserver_url).toMatch(/^http:\/\/shim\.example\.test:3000\/\?bf_route=v1\./);
  expect(exit).toBeUndefined();
}

async function rollout(): Promise<{ flagReloads: { ok: number; errors: number; lastError: string | null } }> {
  return (await fetch(`${shim.adminUrl}/api/rollout`)).json() as never;
}

describe('bifrost shim against a misbehaving Godserver (real process)', () => {
  it('answers 502 when the Godserver resets in the middle of its body, and keeps serving', async () => {
    await stillServing('before');
    const broken = await init(shim.url, 'reset');
    expect(broken.status).toBe(502);
    await stillServing('after-reset');
    expect(JSON.parse(broken.body)).toEqual({ error: { code: 'badGateway', message: expect.stringMatching(/^Godserver answer broke off: /) } });
  });

  it('survives a client that hangs up while the Godserver is still sending its body', async () => {
    await new Promise<void>((done) => {
      const req = http.get(`${shim.url}/godserver/init`, { headers: { 'x-access-token': 'stall' }, agent: false });
      req.on('error', () => done());
      req.on('response', () => done());
      setTimeout(() => {
        req.destroy();
        done();
      }, 300);
    });
    await new Promise((r) => setTimeout(r, 300));
    await stillServing('after-hangup');
    const metrics = await (await fetch(`${shim.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/bifrost_shim_godserver_requests_total\{status="aborted",rewritten="false"\} 1/);
  });

  it('routes numeric user and team ids (as strings), instead of passing the answer through', async () => {
    const r = await init(shim.url, 'numeric');
    expect(r.status).toBe(200);
    expect(r.route).toBe('bifrost');
    const body = JSON.parse(r.body);
    expect(body.user).toEqual({ id: 42, teamId: 7 }); // the Godserver's body is otherwise untouched
    const token = new URL(body.syncserver_url).searchParams.get('bf_route')!;
    const [, user64, team64] = token.split('.');
    expect([Buffer.from(user64!, 'base64url').toString(), Buffer.from(team64!, 'base64url').toString()]).toEqual(['42', '7']);
  });

  it('keeps the last good flags when an atomic write brings rules the SDK cannot take, reports the refusal, and keeps serving', async () => {
    const before = await rollout();
    const bad = { ...buildFlag({ percent: 0, bucketBy: 'user' }, 'salt', 99), rules: [null] };
    await writeFileAtomic(flagsFile, JSON.stringify({ flags: { [FLAG_KEY]: bad } }));
    const deadline = Date.now() + 5000;
    let after = before;
    while (after.flagReloads.errors === before.flagReloads.errors && Date.now() < deadline && !exit) {
      await new Promise((r) => setTimeout(r, 50));
      after = await rollout();
    }
    expect(exit, `the shim exited: ${stderr()}`).toBeUndefined();
    expect(after.flagReloads.errors).toBe(before.flagReloads.errors + 1);
    expect(after.flagReloads.lastError).toContain('rules[0] must be an object');
    // Still 100% (the last good flags), not the 0% of the refused file.
    expect((await init(shim.url, 'ok-flags')).route).toBe('bifrost');
    await stillServing('after-bad-flags');
  });
});

describe('Godserver timing out after its headers (in-process shim)', () => {
  it('answers 502 and the next request is served', async () => {
    const s = await startShim({ port: 0, adminPort: 0, host: '127.0.0.1', godserverUrl: godserver.url, syncUrl: godserver.url, bifrostUrls: ['http://127.0.0.1:9'], flagsFile: join(dir, 'timeout-flags.json'), tokenSecret: 't', adminToken: 'a', godserverTimeoutMs: 300, log: silentLogger });
    try {
      const r = await init(s.url, 'stall');
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body).error).toEqual({ code: 'badGateway', message: expect.stringContaining('timed out after 300 ms') });
      expect((await init(s.url, 'ok-next')).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});

describe('proxied mode on a wildcard address', () => {
  it('refuses to start without a public URL: exit 2, one line naming --public-url', () => {
    const r = spawnSync(process.execPath, [BIN, 'shim', '--godserver', 'http://127.0.0.1:1', '--sync', 'http://127.0.0.1:1', '--bifrost', 'http://127.0.0.1:2', '--port', '0', '--admin-port', '0'], {
      env: { ...process.env, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'bifrost: --public-url is required in proxied mode when --host is a wildcard address ("0.0.0.0"): clients would be told to connect to http://127.0.0.1; set it to the URL they reach the shim at (e.g. https://sync.example.com)\n',
    );
  }, 90_000);

  it('startShim refuses too (publicUrl named); direct mode and a given public URL are fine', async () => {
    const base = { port: 0, adminPort: 0, godserverUrl: godserver.url, syncUrl: godserver.url, bifrostUrls: ['http://127.0.0.1:9'], flagsFile: join(dir, 'wild-flags.json'), tokenSecret: 't', adminToken: 'a', log: silentLogger };
    await expect(startShim({ ...base, host: '::' })).rejects.toThrow(/^publicUrl is required in proxied mode when host is a wildcard address \("::"\)/);
    await expect(startShim({ ...base, host: '0.0.0.0' })).rejects.toThrow(/publicUrl is required/);
    const direct = await startShim({ ...base, host: '0.0.0.0', mode: 'direct' });
    await direct.close();
    const given = await startShim({ ...base, host: '0.0.0.0', publicUrl: 'https://sync.example.com' });
    try {
      expect(given.url).toBe('https://sync.example.com');
    } finally {
      await given.close();
    }
  });
});
