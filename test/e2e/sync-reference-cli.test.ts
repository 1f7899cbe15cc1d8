/**
 * `bifrost sync-reference` as a user runs it: a real child process, its ready
 * line, its bridge, and a clean stop on SIGINT / SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import { startPublishRecorder, type PublishRecorder } from '../support/publish-recorder.ts';

const bin = fileURLToPath(new URL('../../bin/bifrost.mjs', import.meta.url));
const tokenSecret = 'sync-reference-cli-test-secret';
const baseEnv = { ...process.env, BIFROST_TOKEN_SECRET: tokenSecret, BIFROST_PRIVATE_URL: '', BIFROST_SERVICE_TOKEN: '', SYNC_PORT: '', LOG_LEVEL: 'warn' };

const children: ChildProcess[] = [];
const recorders: PublishRecorder[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const r of recorders.splice(0)) await r.close();
});

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(args: string[], env: NodeJS.ProcessEnv = baseEnv): Running {
  const child = spawn(process.execPath, [bin, 'sync-reference', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function waitForOutput(r: Running, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = r.stdout().match(pattern);
    if (m) return m;
    if (r.child.exitCode !== null) throw new Error(`sync-reference exited (${r.child.exitCode}) before printing ${pattern}: ${r.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} on stdout within ${timeoutMs} ms; stderr: ${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('bifrost sync-reference', () => {
  it('prints its URL when ready, serves Godserver init, and stops cleanly on SIGINT', async () => {
    const r = run(['--port', '0']);
    const [, url] = await waitForOutput(r, /sync-reference listening on (http:\/\/127\.0\.0\.1:\d+)\n/);
    // The bridge line follows the listening line; under load it may arrive a moment later.
    await waitForOutput(r, /dual-publish bridge off/);
    const token = await signAccessToken(tokenSecret, { userId: 'u7', teamId: 't7' });
    const res = await fetch(`${url}/godserver/init`, { headers: { 'x-access-token': token } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ user: { id: 'u7', teamId: 't7' }, syncserver_url: url });

    r.child.kill('SIGINT');
    expect(await r.exited).toEqual({ code: 0, signal: null });
    expect(r.stderr()).toContain('SIGINT: stopping sync-reference');
    await expect(fetch(`${url}/godserver/init`)).rejects.toThrow();
  });

  it('takes its port from SYNC_PORT, bridges to --bifrost-private with the service token, prints JSON and stops on SIGTERM', async () => {
    const bifrost = await startPublishRecorder();
    recorders.push(bifrost);
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const r = run(['--json', '--bifrost-private', bifrost.url], { ...baseEnv, SYNC_PORT: String(port), BIFROST_SERVICE_TOKEN: 'cli-svc' });
    await waitForOutput(r, /\}\n$/);
    const ready = JSON.parse(r.stdout()) as { url: string; port: number; bridge: string };
    expect(ready).toEqual({ url: `http://127.0.0.1:${port}`, port, host: '127.0.0.1', bridge: `${bifrost.url}/v1/publish` });

    const token = await signAccessToken(tokenSecret, { userId: 'u1', teamId: 't1' });
    const created = await fetch(`${ready.url}/collection`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-access-token': token }, body: JSON.stringify({ id: 'cli1', name: 'x' }) });
    expect(created.status).toBe(200);
    const [call] = await bifrost.waitForAccepted(1, 10_000);
    expect(call).toMatchObject({ topic: 'collection:cli1', event: 'collection', authorization: 'Bearer cli-svc', data: { verb: 'created', id: 'cli1' } });

    r.child.kill('SIGTERM');
    expect(await r.exited).toEqual({ code: 0, signal: null });
  });

  it('shows an example in --help and exits 2 on a bad port or a taken port', async () => {
    const help = spawnSync(process.execPath, [bin, 'sync-reference', '--help'], { env: baseEnv, encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain('bifrost sync-reference --port');

    const bad = spawnSync(process.execPath, [bin, 'sync-reference', '--port', 'eighty'], { env: baseEnv, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--port must be a port number');

    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (blocker.address() as AddressInfo).port;
      const r = run(['--port', String(port)]);
      const { code } = await r.exited;
      expect(code).toBe(2);
      expect(r.stderr()).toMatch(/failed to start.*EADDRINUSE/);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});
