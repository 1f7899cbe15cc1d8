/**
 * Scenario 4, reconnect storm: N unchanged legacy clients (socket.io protocol,
 * engine.io 4 over WebSocket, each with its `bf_route` token) connecting at
 * once through the shim to 2 Bifrost gateway nodes with admission control on
 * (the default load targets). A client that is refused (503 from the shim or a
 * node, reset, timeout) retries as socket.io-client does: exponential backoff
 * from 1 s up to 5 s with ±50 % jitter. Figures: time until all are connected,
 * peak accepted connections/s, p99 handshake (of the successful attempt),
 * rejected-then-retried count, failed clients.
 */
import type { BenchContext } from '../run.ts';
import type { ConnectResult } from '../harness/client-generator.ts';
import { CpuMeter } from '../harness/cpu.ts';
import { sleep, stopAll } from '../harness/processes.ts';
import { pair, printTable } from '../harness/report.ts';
import { startGatewayProcess, type GatewayNode } from '../systems/bifrost.ts';
import { startShimProcess, type RunningShim } from '../systems/shim.ts';

export interface StormOptions {
  clients: number;
  nodes: number;
  reps: number;
}

interface StormRun {
  rep: number;
  connect: ConnectResult;
  cpuUs: { shim: number; gateways: number[] };
  perNode: Record<string, number>;
}

export async function runReconnectStorm(bc: BenchContext, o: StormOptions): Promise<unknown> {
  const nodes: GatewayNode[] = [];
  let shim: RunningShim | undefined;
  const runs: StormRun[] = [];
  try {
    const prefix = `bench-storm-${bc.runId}:`;
    for (let i = 0; i < o.nodes; i++) nodes.push(await startGatewayProcess({ redisUrl: bc.redis.url, prefix, nodeId: `storm-gw-${i}` }));
    shim = await startShimProcess({ bifrostUrls: nodes.map((n) => n.publicUrl), syncUrl: nodes[0]!.publicUrl, fallback: 'error' });
    await sleep(1500);
    for (let rep = 1; rep <= o.reps; rep++) {
      bc.log(`reconnect-storm: ${o.clients} legacy clients at once through the shim to ${o.nodes} nodes, rep ${rep}`);
      const cpu = new CpuMeter(() => [shim!.child.pid, ...nodes.map((n) => n.child.pid)]);
      cpu.begin();
      const connect = await bc.generator.call<ConnectResult>('connect', {
        groups: [{ protocol: 'socketio', url: shim.url.replace(/^http/, 'ws') + '/socket.io/', count: o.clients, routeSecret: shim.routeSecret, userPrefix: `storm${rep}u` }],
        concurrency: o.clients,
        timeoutMs: 20_000,
        retry: { maxAttempts: 30, minDelayMs: 1000, maxDelayMs: 5000 },
      });
      const c = cpu.end();
      const perNode: Record<string, number> = {};
      for (const n of nodes) {
        const load = (await (await fetch(n.publicUrl + '/load')).json()) as { connections: number };
        perNode[n.nodeId] = load.connections;
      }
      runs.push({ rep, connect, cpuUs: { shim: Math.round(c.perPid[shim.child.pid] ?? 0), gateways: nodes.map((n) => Math.round(c.perPid[n.child.pid] ?? 0)) }, perNode });
      bc.log(
        `  rep ${rep}: ${connect.opened} connected, ${connect.failed} failed in ${(connect.durationMs / 1000).toFixed(1)} s; peak ${connect.peakPerSec}/s; ` +
          `p99 handshake ${connect.handshake.p99} ms; ${connect.retries} refusals retried (${connect.retriedClients} clients); per node ${JSON.stringify(perNode)}`,
      );
      await bc.generator.call('closeAll');
      await sleep(3000);
    }
  } finally {
    await bc.generator.call('closeAll').catch(() => undefined);
    await stopAll([shim?.child, ...nodes.map((n) => n.child)]);
  }
  const of = (f: (r: StormRun) => number): string => pair(runs.map(f));
  printTable(
    `Reconnect storm (${o.clients} legacy socket.io clients at once → shim → ${o.nodes} gateway nodes, admission control on) — both reps`,
    ['all connected after s', 'failed clients', 'peak accepted/s', 'mean accepted/s', 'handshake p50 / p99 ms', 'refused then retried', 'shim CPU ms', 'gateway CPU ms'],
    [
      [
        of((r) => r.connect.durationMs / 1000),
        of((r) => r.connect.failed),
        of((r) => r.connect.peakPerSec),
        of((r) => r.connect.perSec),
        runs.map((r) => `${r.connect.handshake.p50} / ${r.connect.handshake.p99}`).join(' ; '),
        of((r) => r.connect.retries),
        of((r) => r.cpuUs.shim / 1000),
        of((r) => r.cpuUs.gateways.reduce((a, b) => a + b, 0) / 1000),
      ],
    ],
  );
  const allOk = runs.every((r) => r.connect.failed === 0 && r.connect.opened === o.clients);
  process.stdout.write(`Reconnect storm: all ${o.clients} reconnected with zero failed clients in every rep: ${allOk ? 'MET' : 'NOT MET'}\n`);
  return { options: o, runs, allReconnected: allOk };
}
