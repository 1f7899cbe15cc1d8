/**
 * Bifrost: N `bifrost gateway` processes (exactly what production runs) on one
 * Redis. Subscribers speak the native protocol on `/ws` and subscribe to team
 * topics (`team:t0…`), which the default policy allows for members of the team.
 * Variants: the publisher calls the broker's publish directly (as the private
 * API does), or `POST /v1/publish` over HTTP.
 */
import path from 'node:path';
import type { PublisherSetup } from '../harness/publisher.ts';
import { ROOT, spawnReady, stopAll, type Child } from '../harness/processes.ts';
import { freePort } from '../harness/redis.ts';
import { shareOf } from './peer.ts';
import type { BenchSystem, RunningSystem, StartContext } from './system.ts';

export const BENCH_TOKEN_SECRET = 'bench-token-secret';
export const BENCH_SERVICE_TOKEN = 'bench-service-token';

export interface GatewayNode {
  child: Child;
  publicUrl: string;
  privateUrl: string;
  nodeId: string;
}

/** Starts one `bifrost gateway` process and waits for its ready line. */
export async function startGatewayProcess(o: { redisUrl: string; prefix: string; nodeId: string; nodeArgs?: string[]; env?: Record<string, string>; root?: string }): Promise<GatewayNode> {
  const port = await freePort();
  const privatePort = await freePort();
  const { child, ready } = await spawnReady<{ publicUrl: string; privateUrl: string; nodeId: string }>(
    `bifrost ${o.nodeId}`,
    process.execPath,
    [
      ...(o.nodeArgs ?? []),
      path.join(o.root ?? ROOT, 'bin/bifrost.mjs'),
      'gateway',
      '--port', String(port),
      '--private-port', String(privatePort),
      '--host', '127.0.0.1',
      '--redis', o.redisUrl,
      '--redis-prefix', o.prefix,
      '--node-id', o.nodeId,
      '--drain-window', '1s',
      '--json',
      '--log-level', 'warn',
    ],
    {
      env: { ...process.env, BIFROST_TOKEN_SECRET: BENCH_TOKEN_SECRET, BIFROST_SERVICE_TOKEN: BENCH_SERVICE_TOKEN, ...o.env },
      isReady: (obj) => typeof obj.publicUrl === 'string',
    },
  );
  return { child, ...ready };
}

/**
 * A Bifrost system. `root` runs the gateway from another checkout (the
 * `--baseline <dir>` option: before/after comparisons of gateway changes in one run).
 */
export function makeBifrost(id: string, label: string, publishVia: 'broker' | 'http', root?: string): BenchSystem {
  return {
    id,
    label,
    async start(ctx: StartContext): Promise<RunningSystem> {
      const prefix = `bench-${ctx.runId}-${Math.random().toString(36).slice(2, 7)}:`;
      const nodes: GatewayNode[] = [];
      try {
        for (let i = 0; i < ctx.nodes; i++) nodes.push(await startGatewayProcess({ redisUrl: ctx.redisUrl, prefix, nodeId: `bench-gw-${i}`, nodeArgs: ctx.nodeArgs, root }));
      } catch (err) {
        await stopAll(nodes.map((n) => n.child));
        throw err;
      }
      const wsUrl = (n: GatewayNode): string => n.publicUrl.replace(/^http/, 'ws') + '/ws';
      return {
        pids: () => nodes.map((n) => n.child.pid),
        topics: (n) => Array.from({ length: n }, (_, i) => `team:t${i}`),
        subscriberGroups: (count, topics) =>
          nodes.map((n, k) => ({
            protocol: 'native' as const,
            url: wsUrl(n),
            // Every node gets every topic: each topic's subscribers are spread over all nodes.
            count: shareOf(count, nodes.length, k),
            topics,
            tokenSecret: BENCH_TOKEN_SECRET,
            userPrefix: `n${k}u`,
          })),
        idleGroups: (count) => [{ protocol: 'native', url: wsUrl(nodes[0]!), count, tokenSecret: BENCH_TOKEN_SECRET }],
        publisher: (payloadBytes): PublisherSetup =>
          publishVia === 'broker'
            ? { mode: 'bifrost-broker', redisUrl: ctx.redisUrl, redisPrefix: prefix, payloadBytes }
            : { mode: 'bifrost-http', redisUrl: ctx.redisUrl, privateUrls: nodes.map((n) => n.privateUrl), serviceToken: BENCH_SERVICE_TOKEN, payloadBytes, maxInFlight: 256 },
        async heapUsed() {
          return Promise.all(
            nodes.map(async (n) => {
              const text = await (await fetch(n.publicUrl + '/metrics')).text();
              const m = /^bifrost_process_nodejs_heap_size_used_bytes(?:\{[^}]*\})? ([\d.e+]+)$/m.exec(text);
              return m ? Number(m[1]) : NaN;
            }),
          );
        },
        stop: () => stopAll(nodes.map((n) => n.child)),
      };
    },
  };
}

/** Subscribers on 2 nodes; the publisher calls the Redis broker's publish directly. */
export const bifrost = makeBifrost('bifrost', 'Bifrost (native /ws, RedisBroker.publish)', 'broker');
/** The same, publishing through the private API `POST /v1/publish`. */
export const bifrostHttp = makeBifrost('bifrost-http', 'Bifrost (native /ws, POST /v1/publish)', 'http');
