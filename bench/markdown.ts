/**
 * Renders a result file as the Markdown tables docs/performance.md carries.
 * Usage: node --import tsx bench/markdown.ts [bench/results/latest.json]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fmt, pair } from './harness/report.ts';

/** Both reps' values, or a dash where the result file predates the figure (undefined fields give NaN). */
function pairOrDash(values: number[]): string {
  return pair(values.filter(Number.isFinite)) || '—';
}

// The result file is plain JSON written by this harness; its shape is the scenarios' return values.
type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any

function table(head: string[], rows: (string | number)[][]): string {
  const cell = (c: string | number): string => (typeof c === 'number' ? fmt(c) : c).replace(/\|/g, '\\|');
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

export function renderMarkdown(result: Any): string {
  const out: string[] = [];
  out.push(`Run ${result.startedAt} → ${result.finishedAt} (${result.mode}), ${result.machine.cpus} cores ${result.machine.model}, node ${result.machine.node}.`);
  for (const [id, sc] of Object.entries(result.scenarios as Record<string, Any>)) {
    if (sc?.error) out.push(`\n#### ${id}: FAILED\n\n\`\`\`\n${String(sc.error).split('\n').slice(0, 6).join('\n')}\n\`\`\``);
  }
  const ok = (x: Any): Any => (x && !x.error ? x : undefined);
  const f = ok(result.scenarios.fanout);
  if (f) {
    out.push(`\n#### Fanout through Redis (${f.options.subscribers} subscribers, ${f.options.topics} topics, ${f.options.nodes} nodes per system, ${f.options.payloadBytes}-byte payloads, ${f.options.stepSeconds} s steps)\n`);
    out.push(
      table(
        ['system', 'rep', 'step msg/s', 'delivered/s', 'lost', 'p50 / p99 / p999 ms', 'server CPU µs/msg', 'main thread µs/msg', 'result'],
        f.runs.flatMap((r: Any) =>
          r.steps.map((s: Any) => [r.system, r.rep, s.targetDeliveredPerSec, s.deliveredPerSec, s.lost, `${s.latency.p50} / ${s.latency.p99} / ${s.latency.p999}`, s.cpu.serverUsPerMsg, s.cpu.mainThreadUsPerMsg ?? NaN, s.pass ? 'pass' : `FAIL (${s.why})`]),
        ),
      ),
    );
    const sm = f.summary;
    out.push(`\nAt the reference step (${sm.referenceStepDeliveredPerSec} msg/s, the highest every system passed in every rep):\n`);
    out.push(
      table(
        ['system', 'server CPU µs/msg (rep 1 / rep 2)', 'sustainable delivered/s (rep 1 / rep 2)'],
        Object.keys(sm.serverCpuUsPerMsgAtReference).map((id) => [id, pair(sm.serverCpuUsPerMsgAtReference[id]), sm.sustainableDeliveredPerSec[id] ? pair(sm.sustainableDeliveredPerSec[id]) : 'n/a']),
      ),
    );
    const r = sm.ratios;
    out.push(
      '\n' +
        table(
          ['ratio', 'measured', 'target', ''],
          [
            ['Bifrost CPU/msg ÷ Socket.IO', r.cpuBifrostVsSocketio.toFixed(2), '≤ 0.55', r.cpuBifrostVsSocketio <= 0.55 ? 'met' : 'NOT met'],
            ['Bifrost CPU/msg ÷ bare ws', r.cpuBifrostVsWs.toFixed(2), '≤ 0.8', r.cpuBifrostVsWs <= 0.8 ? 'met' : 'NOT met'],
            ['Bifrost sustainable ÷ bare ws', r.sustainableBifrostVsWs.toFixed(2), '≥ 1.0', r.sustainableBifrostVsWs >= 1 ? 'met' : 'NOT met'],
            ['0 lost at every passing step', String(sm.zeroLossAtPassingSteps), 'true', sm.zeroLossAtPassingSteps ? 'met' : 'NOT met'],
          ],
        ),
    );
    if (sm.privateApiCpuUsPerPublish) out.push(`\nPrivate API CPU per \`POST /v1/publish\` (HTTP variant minus broker variant, same step and rep): ${pair(sm.privateApiCpuUsPerPublish)} µs.`);
  }
  const s = ok(result.scenarios['shim-proxy']);
  if (s) {
    const of = (id: string, g: (r: Any) => number): number[] => s.results.filter((r: Any) => r.path === id).map(g);
    const ids = [...new Set(s.results.map((r: Any) => r.path))] as string[];
    out.push(`\n#### The shim in the socket path (${s.options.echoConnections} connections × ${s.options.inflight} in flight, ${s.options.messageBytes}-byte messages; ${s.options.openConnections} connections opened ${s.options.openConcurrency} at a time)\n`);
    out.push(
      table(
        ['path', 'round trips/s', 'RTT p50 / p99 ms', 'proxy CPU µs/round trip', 'connections/s', 'handshake p99 ms', 'proxy CPU µs/connection', 'all CPU µs/connection (proxy + echo + generator)'],
        ids.map((id) => [
          id,
          pair(of(id, (r) => r.echo.perSec)),
          s.results
            .filter((x: Any) => x.path === id)
            .map((x: Any) => `${x.echo.rtt.p50} / ${x.echo.rtt.p99}`)
            .join(' ; '),
          id === 'direct' ? '—' : pair(of(id, (r) => r.echo.proxyUsPerRoundTrip)),
          pair(of(id, (r) => r.open.perSec)),
          pair(of(id, (r) => r.open.handshake.p99)),
          id === 'direct' ? '—' : pair(of(id, (r) => r.open.proxyUsPerConnection)),
          pairOrDash(of(id, (r) => r.open.proxyUsPerConnection + r.open.echoServerUsPerConnection + r.open.generatorUsPerConnection)),
        ]),
      ),
    );
    if (s.ratios) {
      out.push(
        '\n' +
          table(
            ['ratio', 'measured', 'target', ''],
            [
              ['shim CPU/round trip ÷ nginx', s.ratios.cpuPerRoundTripShimVsNginx.toFixed(2), '≤ 1.0', s.ratios.cpuPerRoundTripShimVsNginx <= 1 ? 'met' : 'NOT met'],
              ['shim connections/s ÷ nginx', s.ratios.connectionRateShimVsNginx.toFixed(2), '≥ 0.9', s.ratios.connectionRateShimVsNginx >= 0.9 ? 'met' : 'NOT met'],
            ],
          ),
      );
    } else out.push(`\nnginx skipped: ${s.nginxSkipped}`);
    if (s.budget) {
      out.push(
        `\nCPU budget: on ${s.budget.cores} cores shared by the proxy, the echo server and the generator, the CPU all three spend per connection through the shim ` +
          `allows at most ${Math.round(s.budget.shimCeilingPerSec).toLocaleString('en-US')} connections/s: ${s.budget.shimCeilingVsNginx.toFixed(2)}× nginx's measured rate.`,
      );
    }
    if (s.library) {
      out.push(
        `\nhttp-proxy-3 alone (no decision, no tracking): ${s.library.connectionRateBareVsNginx !== undefined ? `${s.library.connectionRateBareVsNginx.toFixed(2)}× nginx's connections/s; ` : ''}` +
          `the shim opens ${s.library.connectionRateShimVsBare.toFixed(2)}× its connections/s and adds ${Math.round(s.library.shimExtraUsPerConnection)} µs of CPU per upgrade (no target).`,
      );
    }
  }
  const i = ok(result.scenarios.idle);
  if (i) {
    const of = (id: string, g: (r: Any) => number): number[] => i.runs.filter((r: Any) => r.system === id).map(g);
    out.push(`\n#### Idle connections (${i.options.connections} on one process)\n`);
    out.push(
      table(
        ['system', 'RSS KB/connection', 'heap KB/connection', 'RSS KB per added connection', 'connections/s', 'refused then retried'],
        ['bifrost', 'ws'].map((id) => [
          id,
          pair(of(id, (r) => r.rssPerConnection / 1024)),
          pair(of(id, (r) => r.heapPerConnection / 1024)),
          pairOrDash(of(id, (r) => r.rssPerAddedConnection / 1024)),
          pair(of(id, (r) => r.connect.perSec)),
          pair(of(id, (r) => r.connect.retries + (r.warmConnect?.retries ?? 0))),
        ]),
      ),
    );
    const ratio = i.ratios.rssPerConnectionBifrostVsWs;
    const added = i.ratios.rssPerAddedConnectionBifrostVsWs;
    out.push(
      `\nBifrost RSS/connection ÷ bare ws: ${ratio.toFixed(2)} (target ≤ 1.2: ${ratio <= 1.2 ? 'met' : 'NOT met'})` +
        (typeof added === 'number' ? `; per added connection (after the first tenth): ${added.toFixed(2)}.` : '.'),
    );
  }
  const st = ok(result.scenarios['reconnect-storm']);
  if (st) {
    out.push(`\n#### Reconnect storm (${st.options.clients} legacy socket.io clients at once → shim → ${st.options.nodes} gateway nodes, admission control on)\n`);
    out.push(
      table(
        ['rep', 'all connected after s', 'failed', 'peak accepted/s', 'mean accepted/s', 'handshake p50 / p99 ms', 'refused then retried (clients)', 'connections per node'],
        st.runs.map((r: Any) => [r.rep, r.connect.durationMs / 1000, r.connect.failed, r.connect.peakPerSec, r.connect.perSec, `${r.connect.handshake.p50} / ${r.connect.handshake.p99}`, `${r.connect.retries} (${r.connect.retriedClients})`, Object.values(r.perNode).join(' / ')]),
      ),
    );
    out.push(`\nAll reconnected with zero failed clients: ${st.allReconnected ? 'met' : 'NOT met'}.`);
  }
  return out.join('\n') + '\n';
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const file = process.argv[2] ?? path.resolve(import.meta.dirname, 'results/latest.json');
  process.stdout.write(renderMarkdown(JSON.parse(readFileSync(file, 'utf8'))));
}
