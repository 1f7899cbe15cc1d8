/**
 * Socket.IO 4 + `@socket.io/redis-adapter`: what most Node teams run. N server
 * processes (`socketio-server.ts`); clients speak engine.io 4 over WebSocket and
 * join the room named in their handshake query; the publisher is
 * `@socket.io/redis-emitter`, straight to Redis.
 */
import path from 'node:path';
import { ROOT, TSX_IMPORT, spawnReady, stopAll, type Child } from '../harness/processes.ts';
import { freePort } from '../harness/redis.ts';
import type { BenchSystem, RunningSystem, StartContext } from './system.ts';

export async function startPeerProcess(name: string, file: string, args: string[], nodeArgs: string[] = []): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const { child } = await spawnReady(name, process.execPath, [...nodeArgs, ...TSX_IMPORT, path.join(ROOT, file), '--port', String(port), ...args], {
    isReady: (o) => o.ready === true,
  });
  return { child, port };
}

export async function peerHeap(port: number): Promise<number> {
  const r = (await (await fetch(`http://127.0.0.1:${port}/bench-stats`)).json()) as { heapUsed: number };
  return r.heapUsed;
}

export const socketio: BenchSystem = {
  id: 'socket.io',
  label: 'Socket.IO 4 + redis-adapter (redis-emitter publisher)',
  async start(ctx: StartContext): Promise<RunningSystem> {
    const nodes: { child: Child; port: number }[] = [];
    try {
      for (let i = 0; i < ctx.nodes; i++) nodes.push(await startPeerProcess(`socket.io ${i}`, 'bench/systems/socketio-server.ts', ['--redis', ctx.redisUrl], ctx.nodeArgs));
    } catch (err) {
      await stopAll(nodes.map((n) => n.child));
      throw err;
    }
    return {
      pids: () => nodes.map((n) => n.child.pid),
      topics: (n) => Array.from({ length: n }, (_, i) => `t${i}`),
      subscriberGroups: (count, topics) =>
        nodes.map((n, k) => ({
          protocol: 'socketio' as const,
          url: `ws://127.0.0.1:${n.port}/socket.io/`,
          count: Math.floor(count / nodes.length) + (k < count % nodes.length ? 1 : 0),
          topics,
          topicParam: 'topic',
        })),
      idleGroups: (count) => [{ protocol: 'socketio', url: `ws://127.0.0.1:${nodes[0]!.port}/socket.io/`, count }],
      publisher: (payloadBytes) => ({ mode: 'socketio-emitter', redisUrl: ctx.redisUrl, payloadBytes }),
      heapUsed: () => Promise.all(nodes.map((n) => peerHeap(n.port))),
      stop: () => stopAll(nodes.map((n) => n.child)),
    };
  },
};
