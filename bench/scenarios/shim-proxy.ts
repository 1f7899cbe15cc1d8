/**
 * Scenario 2, the shim in the socket path: a WebSocket echo server reached
 * directly, through nginx, and through the shim (route token verified and the
 * flag evaluated on every upgrade).
 *  (a) C connections × F messages in flight (closed loop), 64-byte messages:
 *      round trips/s, RTT p50/p99, the proxy's CPU µs per round trip;
 *  (b) open N connections, K at a time: connections/s, p99 handshake, the
 *      proxy's CPU µs per connection (after W warm-up connections, not recorded).
 * The shim proxies only `/socket.io/`, so every client uses that path (the
 * echo server accepts any path).
 */
import os from 'node:os';
import type { BenchContext } from '../run.ts';
import type { ConnectResult } from '../harness/client-generator.ts';
import type { LatencySummary } from '../harness/histogram.ts';
import { CpuMeter } from '../harness/cpu.ts';
import { sleep, stopAll } from '../harness/processes.ts';
import { fmt, mean, pair, printTable, ratioText } from '../harness/report.ts';
import { startPeerProcess, type PeerNode } from '../systems/peer.ts';
import { ensureNginx, startNginx, type RunningNginx } from '../systems/nginx.ts';
import { startShimProcess, type RunningShim } from '../systems/shim.ts';

export interface ShimProxyOptions {
  echoConnections: number;
  inflight: number;
  messageBytes: number;
  echoSeconds: number;
  openConnections: number;
  openConcurrency: number;
  /** Connections opened and closed through each path before its measured open phase. */
  warmupConnections: number;
  /** Also measure http-proxy-3 alone (no decision): what the library costs, apart from the shim. */
  bareHttpProxy: boolean;
  reps: number;
}

interface PathResult {
  path: string;
  rep: number;
  echo: { roundTrips: number; perSec: number; rtt: LatencySummary; proxyUs: number; proxyUsPerRoundTrip: number; echoServerUsPerRoundTrip: number };
  /**
   * The opens: the proxy's CPU, and the echo server's and the client generator's
   * (the rest of the machine's work per connection: on 2 shared cores, the sum
   * bounds the connection rate any path can reach).
   */
  open: ConnectResult & { proxyUs: number; proxyUsPerConnection: number; echoServerUsPerConnection: number; generatorUsPerConnection: number };
}

/** CPU of the proxy, the echo server and the client generator per opened connection. */
function machineUsPerConnection(r: PathResult): number {
  return r.open.proxyUsPerConnection + r.open.echoServerUsPerConnection + r.open.generatorUsPerConnection;
}

export async function runShimProxy(bc: BenchContext, o: ShimProxyOptions): Promise<unknown> {
  const echo = await startPeerProcess('echo', 'bench/systems/echo-server.ts', []);
  let nginx: RunningNginx | undefined;
  let shim: RunningShim | undefined;
  let bare: PeerNode | undefined;
  let nginxSkipped: string | undefined;
  try {
    const echoUrl = `http://127.0.0.1:${echo.port}`;
    const ng = ensureNginx(bc.log);
    if ('bin' in ng) nginx = await startNginx(ng.bin, echo.port);
    else nginxSkipped = ng.skipped;
    if (nginxSkipped) bc.log(`shim-proxy: nginx skipped — ${nginxSkipped}`);
    // The library alone (full runs): what http-proxy-3 costs per upgrade, without the shim's decision.
    bare = o.bareHttpProxy ? await startPeerProcess('http-proxy-3', 'bench/systems/http-proxy-server.ts', ['--target', echoUrl], bc.serverNodeArgs('http-proxy-3')) : undefined;
    shim = await startShimProcess({ bifrostUrls: [echoUrl], syncUrl: echoUrl, fallback: 'error', nodeArgs: bc.serverNodeArgs('shim') });
    // The shim polls /load once a second: let it see the echo node as eligible.
    await sleep(1200);
    const paths: { id: string; url: string; routeSecret?: string; pids: () => number[] }[] = [
      { id: 'direct', url: `ws://127.0.0.1:${echo.port}/socket.io/`, pids: () => [] },
      ...(nginx ? [{ id: 'nginx', url: `ws://127.0.0.1:${nginx.port}/socket.io/`, pids: nginx.pids }] : []),
      ...(bare ? [{ id: 'http-proxy-3', url: `ws://127.0.0.1:${bare.port}/socket.io/`, pids: () => [bare!.child.pid] }] : []),
      { id: 'shim', url: shim.url.replace(/^http/, 'ws') + '/socket.io/', routeSecret: shim.routeSecret, pids: () => [shim!.child.pid] },
    ];
    const results: PathResult[] = [];
    const echoCpu = new CpuMeter(() => [echo.child.pid]);
    const generatorCpu = new CpuMeter(() => [bc.generator.child.pid]);
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const p of paths) {
        const proxy = new CpuMeter(p.pids);
        const group = { protocol: 'raw' as const, url: p.url, count: o.echoConnections, routeSecret: p.routeSecret };
        const c = await bc.generator.call<ConnectResult>('connect', { groups: [group], concurrency: 50 });
        if (c.opened !== o.echoConnections) throw new Error(`shim-proxy ${p.id}: ${c.opened} of ${o.echoConnections} connections opened: ${JSON.stringify(c.errors)}`);
        // Warm-up round trips, not recorded.
        await bc.generator.call('echo', { durationMs: 1000, inflight: o.inflight, size: o.messageBytes });
        proxy.begin();
        echoCpu.begin();
        const e = await bc.generator.call<{ roundTrips: number; perSec: number; durationMs: number; rtt: LatencySummary }>('echo', { durationMs: o.echoSeconds * 1000, inflight: o.inflight, size: o.messageBytes });
        const pu = proxy.end().totalUs;
        const eu = echoCpu.end().totalUs;
        await bc.generator.call('closeAll');
        await sleep(500);
        // Warm-up opens, not recorded: a proxy process that has just started runs its
        // upgrade path unoptimised (the shim's first 2,000 upgrades cost it ~2x the CPU of
        // the next 2,000), and a production proxy is warm.
        await bc.generator.call<ConnectResult>('connect', { groups: [{ ...group, count: o.warmupConnections }], concurrency: o.openConcurrency, timeoutMs: 20_000 });
        await bc.generator.call('closeAll');
        await sleep(500);
        proxy.begin();
        echoCpu.begin();
        generatorCpu.begin();
        const open = await bc.generator.call<ConnectResult>('connect', { groups: [{ ...group, count: o.openConnections }], concurrency: o.openConcurrency, timeoutMs: 20_000 });
        const ou = proxy.end().totalUs;
        const oe = echoCpu.end().totalUs;
        const og = generatorCpu.end().totalUs;
        await bc.generator.call('closeAll');
        await sleep(1000);
        const r: PathResult = {
          path: p.id,
          rep,
          echo: { roundTrips: e.roundTrips, perSec: e.perSec, rtt: e.rtt, proxyUs: Math.round(pu), proxyUsPerRoundTrip: pu / e.roundTrips, echoServerUsPerRoundTrip: eu / e.roundTrips },
          open: {
            ...open,
            proxyUs: Math.round(ou),
            proxyUsPerConnection: ou / Math.max(1, open.opened),
            echoServerUsPerConnection: oe / Math.max(1, open.opened),
            generatorUsPerConnection: og / Math.max(1, open.opened),
          },
        };
        results.push(r);
        bc.log(
          `  ${p.id} rep ${rep}: ${e.perSec} rt/s, rtt p50 ${e.rtt.p50} p99 ${e.rtt.p99} ms, proxy ${r.echo.proxyUsPerRoundTrip.toFixed(2)} µs/rt; ` +
            `open ${open.opened}/${o.openConnections} at ${open.perSec}/s, p99 handshake ${open.handshake.p99} ms, ` +
            `CPU µs/connection proxy ${r.open.proxyUsPerConnection.toFixed(0)} echo ${r.open.echoServerUsPerConnection.toFixed(0)} generator ${r.open.generatorUsPerConnection.toFixed(0)}`,
        );
      }
    }
    const of = (id: string, f: (r: PathResult) => number): number[] => results.filter((r) => r.path === id).map(f);
    printTable(
      `The shim in the socket path (${o.echoConnections} connections × ${o.inflight} in flight, ${o.messageBytes}-byte messages; open ${o.openConnections}, ${o.openConcurrency} at a time) — both reps`,
      ['path', 'round trips/s', 'RTT p50 ms', 'RTT p99 ms', 'proxy CPU µs/round trip', 'connections/s', 'handshake p99 ms', 'proxy CPU µs/connection', 'all CPU µs/connection'],
      paths.map((p) => [
        p.id,
        pair(of(p.id, (r) => r.echo.perSec)),
        pair(of(p.id, (r) => r.echo.rtt.p50)),
        pair(of(p.id, (r) => r.echo.rtt.p99)),
        p.id === 'direct' ? '— (no proxy)' : pair(of(p.id, (r) => r.echo.proxyUsPerRoundTrip)),
        pair(of(p.id, (r) => r.open.perSec)),
        pair(of(p.id, (r) => r.open.handshake.p99)),
        p.id === 'direct' ? '—' : pair(of(p.id, (r) => r.open.proxyUsPerConnection)),
        pair(of(p.id, machineUsPerConnection)),
      ]),
    );
    // The machine's cores are shared by the generator, the echo server and the proxy:
    // no path can open connections faster than the cores divided by the CPU all three spend per connection.
    const cores = os.cpus().length;
    const ceiling = (id: string): number => (cores * 1e6) / mean(of(id, machineUsPerConnection));
    const ratios = nginx
      ? {
          cpuPerRoundTripShimVsNginx: mean(of('shim', (r) => r.echo.proxyUsPerRoundTrip)) / mean(of('nginx', (r) => r.echo.proxyUsPerRoundTrip)),
          connectionRateShimVsNginx: mean(of('shim', (r) => r.open.perSec)) / mean(of('nginx', (r) => r.open.perSec)),
        }
      : undefined;
    // No targets: how the library alone compares, and what the shim adds to it per upgrade.
    const library = bare
      ? {
          connectionRateBareVsNginx: nginx ? mean(of('http-proxy-3', (r) => r.open.perSec)) / mean(of('nginx', (r) => r.open.perSec)) : undefined,
          connectionRateShimVsBare: mean(of('shim', (r) => r.open.perSec)) / mean(of('http-proxy-3', (r) => r.open.perSec)),
          shimExtraUsPerConnection: mean(of('shim', (r) => r.open.proxyUsPerConnection)) - mean(of('http-proxy-3', (r) => r.open.proxyUsPerConnection)),
        }
      : undefined;
    const budget = nginx
      ? { cores, shimUsPerConnection: mean(of('shim', machineUsPerConnection)), shimCeilingPerSec: ceiling('shim'), shimCeilingVsNginx: ceiling('shim') / mean(of('nginx', (r) => r.open.perSec)) }
      : undefined;
    if (ratios && budget) {
      process.stdout.write(
        `Shim CPU/round trip vs nginx:   ${ratioText(ratios.cpuPerRoundTripShimVsNginx, 1.0, 'max')}\n` +
          `Shim connections/s vs nginx:    ${ratioText(ratios.connectionRateShimVsNginx, 0.9, 'min')}\n` +
          `  CPU budget: all processes spend ${fmt(budget.shimUsPerConnection)} µs per connection through the shim, so ${cores} cores open at most ` +
          `${fmt(budget.shimCeilingPerSec)}/s through it: ${budget.shimCeilingVsNginx.toFixed(2)}× nginx's measured rate\n`,
      );
    } else {
      process.stdout.write(`nginx rows skipped: ${nginxSkipped}\n`);
    }
    if (library) {
      process.stdout.write(
        (library.connectionRateBareVsNginx !== undefined ? `http-proxy-3 alone, connections/s vs nginx: ${library.connectionRateBareVsNginx.toFixed(2)}× (no target)\n` : '') +
          `Shim connections/s vs http-proxy-3 alone: ${library.connectionRateShimVsBare.toFixed(2)}×; the shim adds ${Math.round(library.shimExtraUsPerConnection)} µs of CPU per upgrade (decision, tracking)\n`,
      );
    }
    return { options: o, nginxSkipped, results, ratios, library, budget };
  } finally {
    await bc.generator.call('closeAll').catch(() => undefined);
    await stopAll([shim?.child, bare?.child, echo.child]);
    await nginx?.stop();
  }
}
