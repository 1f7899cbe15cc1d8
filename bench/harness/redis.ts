/** A throw-away `redis-server` for one bench run: free port, no persistence, killed with the run. */
import net from 'node:net';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { spawnTracked, sleep, type Child } from './processes.ts';

export interface BenchRedis {
  url: string;
  port: number;
  child: Child;
  stop(): Promise<void>;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(300, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

export async function startRedis(): Promise<BenchRedis> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const bin = which.stdout.trim();
  if (which.status !== 0 || !bin) throw new Error('redis-server is not installed (Debian: apt-get install redis-server)');
  const port = await freePort();
  const child = spawnTracked('redis', bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', '10000']);
  const deadline = Date.now() + 10_000;
  while (!(await answersPing(port))) {
    if (child.proc.exitCode !== null) throw new Error(`redis-server exited: ${child.stderrTail.join('\n')}`);
    if (Date.now() > deadline) throw new Error('redis-server did not answer within 10 s');
    await sleep(50);
  }
  return { url: `redis://127.0.0.1:${port}`, port, child, stop: () => child.stop(1000) };
}
