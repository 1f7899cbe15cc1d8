/** `bifrost shim` as a user runs it: help, usage errors (exit 2), a running shim, SIGTERM. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/bifrost.mjs');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-shim-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 90_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bifrost shim (CLI)', () => {
  it('--help shows every option and an example', () => {
    const r = run(['shim', '--help']);
    expect(r.code).toBe(0);
    for (const opt of ['--godserver', '--sync', '--bifrost', '--port', '--admin-port', '--mode', '--public-url', '--fallback', '--drain', '--json']) expect(r.stdout).toContain(opt);
    expect(r.stdout).toMatch(/Example:\n\s+\$ .*bifrost shim --godserver/);
    // The example runs as shown: on the default 0.0.0.0, proxied mode needs --public-url.
    expect(r.stdout).toMatch(/required in proxied\s+mode when --host is 0\.0\.0\.0/);
    expect(r.stdout).toMatch(/--admin-port 9090 \\\n\s+--public-url https:\/\/sync\.example\.com/);
  });

  it('exits 2 with one clear line on bad usage', () => {
    const missing = run(['shim', '--sync', 'http://127.0.0.1:1', '--bifrost', 'http://127.0.0.1:2']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--godserver <url>' not specified");
    const base = ['shim', '--godserver', 'http://127.0.0.1:1', '--sync', 'http://127.0.0.1:1', '--bifrost', 'http://127.0.0.1:2'];
    const mode = run([...base, '--mode', 'sideways']);
    expect(mode.code).toBe(2);
    expect(mode.stderr).toBe('bifrost: --mode must be "proxied" or "direct", got "sideways"\n');
    const url = run(['shim', '--godserver', 'nope', '--sync', 'http://127.0.0.1:1', '--bifrost', 'http://127.0.0.1:2']);
    expect(url.code).toBe(2);
    expect(url.stderr).toBe('bifrost: --godserver must be an http(s) URL, got "nope"\n');
    const bif = run(['shim', '--godserver', 'http://127.0.0.1:1', '--sync', 'http://127.0.0.1:1', '--bifrost', 'http://127.0.0.1:2,ftp://x']);
    expect(bif.code).toBe(2);
    expect(bif.stderr).toBe('bifrost: --bifrost must be an http(s) URL, got "ftp://x"\n');
    const port = run([...base, '--port', '99999']);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('invalid --port "99999"');
    const envPort = run(base, { BIFROST_SHIM_PORT: 'abc' });
    expect(envPort.code).toBe(2);
    expect(envPort.stderr).toContain('invalid --port "abc" (from BIFROST_SHIM_PORT)');
  }, 300_000); // seven CLI processes; each loads the whole CLI through tsx

  it('runs, serves the admin API, creates the flags file, and stops on SIGTERM', async () => {
    const flagsFile = join(dir, 'flags.json');
    const child = spawn(
      process.execPath,
      [BIN, 'shim', '--godserver', 'http://127.0.0.1:9', '--sync', 'http://127.0.0.1:9', '--bifrost', 'http://127.0.0.1:9', '--port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--json'],
      { env: { ...process.env, BIFROST_FLAGS_FILE: flagsFile, BIFROST_ADMIN_TOKEN: 'cli-admin', BIFROST_TOKEN_SECRET: 'cli-secret', LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const info = await new Promise<{ url: string; adminUrl: string }>((resolveInfo, reject) => {
        let out = '';
        const t = setTimeout(() => reject(new Error('shim did not start')), 60_000);
        child.stdout!.on('data', (d) => {
          out += d;
          const end = out.indexOf('}\n');
          if (end >= 0) {
            clearTimeout(t);
            resolveInfo(JSON.parse(out.slice(out.indexOf('{'), end + 1)));
          }
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}`)));
      });
      const rollout = (await (await fetch(`${info.adminUrl}/api/rollout`)).json()) as { percent: number; flagsFile: string };
      expect(rollout).toMatchObject({ percent: 0, flagsFile });
      const put = await fetch(`${info.adminUrl}/api/rollout`, { method: 'PUT', headers: { authorization: 'Bearer cli-admin', 'content-type': 'application/json' }, body: '{"percent": 5}' });
      expect(put.status).toBe(200);
      // Godserver unreachable → 502 from the public port
      expect((await fetch(`${info.url}/godserver/init`)).status).toBe(502);
    } finally {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
