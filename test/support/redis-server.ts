/**
 * Starting throw-away `redis-server` processes for tests: the suite's own
 * instance when none is reachable, and extra instances for tests that kill,
 * restart or flush Redis on purpose (they never touch a shared server).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';

export interface RedisProcess {
  port: number;
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * A TCP port that was free a moment ago on 127.0.0.1, for a child process to
 * listen on. It is drawn at random from below the kernel's ephemeral range: a
 * port the kernel hands out for `listen(0)` is also the pool every outgoing
 * connection draws from, so between our check and the child's listen any
 * client in a parallel test could take it (EADDRINUSE, seen in CI). Below
 * that range only another explicit bind can, and a random draw from ~20,000
 * ports makes that rare.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const floor = 10_000;
  for (let attempt = 0; attempt < 50 && low - floor > 1000; attempt++) {
    const port = floor + Math.floor(Math.random() * (low - floor));
    if (await bindable(port)) return port;
  }
  return kernelPort();
}

/**
 * A port for a Redis Cluster node: Redis also listens on port + 10000 (the
 * cluster bus), so both must be free and both below the ephemeral range.
 */
async function freeClusterPort(): Promise<number> {
  const [low] = ephemeralRange();
  const floor = 10_000;
  const top = low - 10_000;
  for (let attempt = 0; attempt < 50 && top - floor > 1000; attempt++) {
    const port = floor + Math.floor(Math.random() * (top - floor));
    if ((await bindable(port)) && (await bindable(port + 10_000))) return port;
  }
  throw new Error('no free port pair (port, port + 10000) below the ephemeral range for a Redis Cluster node');
}

function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo, hi];
  } catch {
    /* not Linux: fall through */
  }
  return [32768, 60999];
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function kernelPort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** True when something answers PING at host:port within the timeout. */
export async function redisAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

export function redisServerBinary(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : null;
}

/** Starts `redis-server` (or a sentinel with extraArgs) on a free port, no persistence. */
export async function startRedisServer(extraArgs: string[] = [], port?: number): Promise<RedisProcess> {
  const bin = redisServerBinary();
  if (!bin) throw new Error('redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)');
  const p = port ?? (await freePort());
  const child = spawn(bin, ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.on('error', () => {});
  const deadline = Date.now() + 10_000;
  while (!(await redisAnswers('127.0.0.1', p, 300))) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode} on port ${p}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on port ${p} within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
  };
}

/** Starts a Redis Sentinel watching the master at 127.0.0.1:masterPort under `name`. */
export async function startSentinel(masterPort: number, name = 'mymaster', quorum = 2): Promise<RedisProcess> {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const bin = redisServerBinary();
  if (!bin) throw new Error('redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)');
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'bifrost-sentinel-'));
  const conf = path.join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${quorum}`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 10000`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
  );
  const child = spawn(bin, [conf, '--sentinel'], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.on('error', () => {});
  const deadline = Date.now() + 10_000;
  while (!(await redisAnswers('127.0.0.1', port, 300))) {
    if (child.exitCode !== null) throw new Error(`sentinel exited with code ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`sentinel did not answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    child,
    async stop() {
      if (child.exitCode === null && !child.signalCode) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts a local Redis Cluster of `masters` nodes (no replicas) and waits until it serves all slots. */
export async function startRedisCluster(masters = 3): Promise<{ nodes: RedisProcess[]; seeds: { host: string; port: number }[]; stop(): Promise<void> }> {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { execFileSync } = await import('node:child_process');
  const dir = mkdtempSync(path.join(tmpdir(), 'bifrost-cluster-'));
  const nodes: RedisProcess[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freeClusterPort();
      nodes.push(await startRedisServer(['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir], port));
    }
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore', timeout: 30_000 });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = nodes.every((n) => execFileSync('redis-cli', ['-p', String(n.port), 'cluster', 'info'], { encoding: 'utf8' }).includes('cluster_state:ok'));
      if (ok) break;
      if (Date.now() > deadline) throw new Error('the local Redis Cluster did not reach cluster_state:ok in 20 s');
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    nodes,
    seeds: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
