/**
 * Debian's nginx as a WebSocket reverse proxy: the system people put in front
 * of their sockets. One worker process (the shim is one Node process; a
 * second worker would only split the same two cores). The bench installs the
 * package when it is missing and it runs as root; otherwise the caller skips
 * the nginx rows and says why.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { descendants } from '../harness/cpu.ts';
import { sleep, spawnTracked, type Child } from '../harness/processes.ts';
import { freePort } from '../harness/redis.ts';

export interface RunningNginx {
  url: string;
  port: number;
  /** Master and workers. */
  pids(): number[];
  stop(): Promise<void>;
}

function nginxBinary(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx'], { encoding: 'utf8' });
  const p = r.stdout.trim().split('\n')[0];
  return r.status === 0 && p ? p : null;
}

/** The nginx binary, installed with apt-get when missing and allowed; else the reason it is not there. */
export function ensureNginx(log: (m: string) => void): { bin: string } | { skipped: string } {
  let bin = nginxBinary();
  if (bin) return { bin };
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
  if (!isRoot || !hasApt) return { skipped: `nginx is not installed and the bench ${isRoot ? 'found no apt-get' : 'is not running as root'} to install it (apt-get install -y nginx)` };
  log('nginx missing: apt-get install -y nginx');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', 'nginx'], { stdio: 'ignore', env, timeout: 300_000 });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: 300_000 });
    r = spawnSync('apt-get', ['install', '-y', 'nginx'], { stdio: 'ignore', env, timeout: 300_000 });
  }
  bin = nginxBinary();
  return bin ? { bin } : { skipped: `apt-get install nginx failed (exit ${r.status})` };
}

export async function startNginx(bin: string, upstreamPort: number): Promise<RunningNginx> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bifrost-bench-nginx-'));
  const port = await freePort();
  const conf = `
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 16000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream echo { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_buffering off;
    }
  }
}
`;
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const child: Child = spawnTracked('nginx', bin, ['-p', dir, '-c', file]);
  // Its config and temp paths go with the master, however it stops.
  child.proc.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/load`);
      if (res.status === 200) break;
    } catch {
      /* not yet */
    }
    if (child.proc.exitCode !== null) throw new Error(`nginx exited: ${child.stderrTail.join('\n')}`);
    if (Date.now() > deadline) throw new Error(`nginx did not answer within 10 s: ${child.stderrTail.join('\n')}`);
    await sleep(100);
  }
  return { url: `http://127.0.0.1:${port}`, port, pids: () => [child.pid, ...descendants(child.pid)], stop: () => child.stop(2000) };
}
