/**
 * What the peer systems (Socket.IO, bare ws, the echo server) share: a server
 * process per node, started on a free port and ready when it prints
 * `{"ready":true}`, its heap read from `/bench-stats`, and how a number of
 * clients is split over the nodes.
 */
import path from 'node:path';
import { ROOT, TSX_IMPORT, spawnReady, stopAll, type Child } from '../harness/processes.ts';
import { freePort } from '../harness/redis.ts';
import type { StartContext } from './system.ts';

export interface PeerNode {
  child: Child;
  port: number;
}

export async function startPeerProcess(name: string, file: string, args: string[], nodeArgs: string[] = []): Promise<PeerNode> {
  const port = await freePort();
  const { child } = await spawnReady(name, process.execPath, [...nodeArgs, ...TSX_IMPORT, path.join(ROOT, file), '--port', String(port), ...args], {
    isReady: (o) => o.ready === true,
  });
  return { child, port };
}

/** `ctx.nodes` server processes of one system; on a failure the ones already started are stopped. */
export async function startPeerNodes(ctx: StartContext, label: string, file: string, args: string[]): Promise<PeerNode[]> {
  const nodes: PeerNode[] = [];
  try {
    for (let i = 0; i < ctx.nodes; i++) nodes.push(await startPeerProcess(`${label} ${i}`, file, args, ctx.nodeArgs));
  } catch (err) {
    await stopAll(nodes.map((n) => n.child));
    throw err;
  }
  return nodes;
}

export async function peerHeap(port: number): Promise<number> {
  const r = (await (await fetch(`http://127.0.0.1:${port}/bench-stats`)).json()) as { heapUsed: number };
  return r.heapUsed;
}

/** Node k's share of `count` clients over `nodes` nodes (the first ones take the remainder). */
export function shareOf(count: number, nodes: number, k: number): number {
  return Math.floor(count / nodes) + (k < count % nodes ? 1 : 0);
}
