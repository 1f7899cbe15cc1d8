/**
 * Socket.IO 4 + `@socket.io/redis-adapter`: what most Node teams run. N server
 * processes (`socketio-server.ts`); clients speak engine.io 4 over WebSocket and
 * join the room named in their handshake query; the publisher is
 * `@socket.io/redis-emitter`, straight to Redis.
 */
import { stopAll } from '../harness/processes.ts';
import { peerHeap, shareOf, startPeerNodes } from './peer.ts';
import type { BenchSystem, RunningSystem, StartContext } from './system.ts';

export const socketio: BenchSystem = {
  id: 'socket.io',
  label: 'Socket.IO 4 + redis-adapter (redis-emitter publisher)',
  async start(ctx: StartContext): Promise<RunningSystem> {
    const nodes = await startPeerNodes(ctx, 'socket.io', 'bench/systems/socketio-server.ts', ['--redis', ctx.redisUrl]);
    return {
      pids: () => nodes.map((n) => n.child.pid),
      topics: (n) => Array.from({ length: n }, (_, i) => `t${i}`),
      subscriberGroups: (count, topics) =>
        nodes.map((n, k) => ({
          protocol: 'socketio' as const,
          url: `ws://127.0.0.1:${n.port}/socket.io/`,
          count: shareOf(count, nodes.length, k),
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
