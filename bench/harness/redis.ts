/**
 * A throw-away `redis-server` for one bench run: free port, no persistence,
 * killed with the run (a tracked child, so Ctrl-C or a failure stops it too).
 * Finding the binary, a free port and the PING check are the test suite's own
 * helpers (`test/support/redis-server.ts`, plain Node, no test framework).
 */
import { freePort, redisAnswers, redisServerBinary } from '../../test/support/redis-server.ts';
import { spawnTracked, sleep, type Child } from './processes.ts';

export { freePort };

export interface BenchRedis {
  url: string;
  port: number;
  child: Child;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<BenchRedis> {
  const bin = redisServerBinary();
  if (!bin) throw new Error('redis-server is not installed (Debian: apt-get install redis-server)');
  const port = await freePort();
  const child = spawnTracked('redis', bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', '10000']);
  const deadline = Date.now() + 10_000;
  while (!(await redisAnswers('127.0.0.1', port, 300))) {
    if (child.proc.exitCode !== null) throw new Error(`redis-server exited: ${child.stderrTail.join('\n')}`);
    if (Date.now() > deadline) throw new Error('redis-server did not answer within 10 s');
    await sleep(50);
  }
  return { url: `redis://127.0.0.1:${port}`, port, child, stop: () => child.stop(1000) };
}
