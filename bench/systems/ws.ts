/**
 * The honest limit for Node: a bare `ws` server with one ioredis subscriber and
 * the naive loop (`for (const ws of room) ws.send(message)`), N processes.
 * Clients name their topic in the query; the publisher PUBLISHes the payload.
 */
import { stopAll } from '../harness/processes.ts';
import { peerHeap, shareOf, startPeerNodes } from './peer.ts';
import type { BenchSystem, RunningSystem, StartContext } from './system.ts';

export const WS_CHANNEL_PREFIX = 'bench-ws:';

export const bareWs: BenchSystem = {
  id: 'ws',
  label: 'bare ws + ioredis (naive send loop)',
  async start(ctx: StartContext): Promise<RunningSystem> {
    const nodes = await startPeerNodes(ctx, 'ws', 'bench/systems/ws-server.ts', ['--redis', ctx.redisUrl, '--prefix', WS_CHANNEL_PREFIX]);
    return {
      pids: () => nodes.map((n) => n.child.pid),
      topics: (n) => Array.from({ length: n }, (_, i) => `t${i}`),
      subscriberGroups: (count, topics) =>
        nodes.map((n, k) => ({
          protocol: 'raw' as const,
          url: `ws://127.0.0.1:${n.port}/`,
          count: shareOf(count, nodes.length, k),
          topics,
          topicParam: 'topic',
        })),
      idleGroups: (count) => [{ protocol: 'raw', url: `ws://127.0.0.1:${nodes[0]!.port}/`, count }],
      publisher: (payloadBytes) => ({ mode: 'redis-publish', redisUrl: ctx.redisUrl, channelPrefix: WS_CHANNEL_PREFIX, payloadBytes }),
      heapUsed: () => Promise.all(nodes.map((n) => peerHeap(n.port))),
      stop: () => stopAll(nodes.map((n) => n.child)),
    };
  },
};
