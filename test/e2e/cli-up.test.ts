/** `bifrost up` as a user runs it: refusals with one clear line, and a full start/stop. */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIFROST_BIN } from '../support/gateway.ts';

const ZERO_PORTS = { BIFROST_SHIM_PORT: '0', BIFROST_ADMIN_PORT: '0', BIFROST_GATEWAY_PORT: '0', BIFROST_PRIVATE_PORT: '0', SYNC_PORT: '0' };

describe('bifrost up', () => {
  it('refuses several nodes on the embedded broker with exit 2 and one line', () => {
    const r = spawnSync(process.execPath, [BIFROST_BIN, 'up', '--nodes', '2'], { encoding: 'utf8', env: { ...process.env, ...ZERO_PORTS, REDIS_URL: '' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--nodes > 1 needs --redis <url>');
  });

  it('starts the whole stack, answers the Godserver through the shim, and stops on SIGINT', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'bifrost-up-'));
    onTestFinished(() => rmSync(cwd, { recursive: true, force: true }));
    const child = spawn(process.execPath, [BIFROST_BIN, 'up', '--json'], { cwd, env: { ...process.env, ...ZERO_PORTS, REDIS_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const info = await new Promise<{ shimUrl: string; adminUrl: string; syncUrl: string; nodes: { publicUrl: string; privateUrl: string }[]; flagsFile: string }>((resolve, reject) => {
      const t = setInterval(() => {
        try {
          resolve(JSON.parse(out));
          clearInterval(t);
        } catch {
          /* not complete yet */
        }
      }, 100);
      child.once('exit', (code) => reject(new Error(`bifrost up exited ${code}`)));
    });
    try {
      expect(info.nodes).toHaveLength(1);
      const tok = spawnSync(process.execPath, [BIFROST_BIN, 'token', '--user', 'u1', '--team', 't1'], { encoding: 'utf8' }).stdout.trim();
      const res = await fetch(info.shimUrl + '/godserver/init', { headers: { 'x-access-token': tok } });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-bifrost-route')).toBe('sync');
      const body = await res.json();
      expect(body.user).toEqual({ id: 'u1', teamId: 't1' });
      // The sync service is registered for requests through Bifrost.
      const svc = await fetch(info.nodes[0]!.privateUrl + '/v1/services/sync', { headers: { authorization: 'Bearer bifrost-dev-service-token' } });
      expect(await svc.json()).toMatchObject({ name: 'sync', upstream: info.syncUrl, prefixes: ['/'] });
      const rollout = await (await fetch(info.adminUrl + '/api/rollout')).json();
      expect(rollout.percent).toBe(0);
      // Its node holds the embedded broker of this directory: a separate gateway here is refused.
      const second = spawnSync(process.execPath, [BIFROST_BIN, 'gateway', '--port', '0', '--private-port', '0'], { cwd, encoding: 'utf8', env: { ...process.env, REDIS_URL: '' } });
      expect(second.status).toBe(2);
      expect(second.stderr).toContain(`(pid ${child.pid} at ${info.nodes[0]!.publicUrl}`);
      expect(second.stderr).toContain('bifrost up');
    } finally {
      child.kill('SIGINT');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
    }
    // The claim on the embedded broker is released, and nothing is left listening.
    expect(existsSync(path.join(cwd, '.bifrost', 'embedded-broker.json'))).toBe(false);
    await expect(fetch(info.shimUrl + '/godserver/init')).rejects.toThrow();
    await expect(fetch(info.nodes[0]!.publicUrl + '/healthz')).rejects.toThrow();
  }, 60_000);
});
