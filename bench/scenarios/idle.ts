/**
 * Scenario 3, idle connections: one Bifrost gateway process (Redis broker)
 * holding N idle native connections, against a bare `ws` server in the same
 * run. RSS and heap per connection = (after − before) / N, read after the
 * connections settled. Admission control stays on: refused upgrades (503) are
 * retried and counted.
 */
import type { BenchContext } from '../run.ts';
import type { ConnectResult } from '../harness/client-generator.ts';
import { rssBytes } from '../harness/cpu.ts';
import { sleep } from '../harness/processes.ts';
import { mean, pair, printTable, ratioText } from '../harness/report.ts';
import { bifrost } from '../systems/bifrost.ts';
import { bareWs } from '../systems/ws.ts';

export interface IdleOptions {
  connections: number;
  reps: number;
}

interface IdleRun {
  system: string;
  rep: number;
  connect: ConnectResult;
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  rssPerConnection: number;
  heapPerConnection: number;
}

export async function runIdle(bc: BenchContext, o: IdleOptions): Promise<unknown> {
  const runs: IdleRun[] = [];
  const systems = [bifrost, bareWs];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const sys of systems) {
      bc.log(`idle: ${sys.label}, rep ${rep}, ${o.connections} connections`);
      const running = await sys.start({ redisUrl: bc.redis.url, nodes: 1, runId: bc.runId });
      try {
        const pid = running.pids()[0]!;
        await sleep(1500);
        const rssBefore = rssBytes(pid);
        const heapBefore = (await running.heapUsed())[0]!;
        const connect = await bc.generator.call<ConnectResult>('connect', {
          groups: running.idleGroups(o.connections),
          concurrency: 100,
          timeoutMs: 30_000,
          retry: { maxAttempts: 30, minDelayMs: 200, maxDelayMs: 3000 },
        });
        if (connect.opened !== o.connections) throw new Error(`idle ${sys.id}: ${connect.opened} of ${o.connections} connected: ${JSON.stringify(connect.errors)}`);
        await sleep(3000);
        const rssAfter = rssBytes(pid);
        const heapAfter = (await running.heapUsed())[0]!;
        const r: IdleRun = {
          system: sys.id,
          rep,
          connect,
          rssBefore,
          rssAfter,
          heapBefore,
          heapAfter,
          rssPerConnection: (rssAfter - rssBefore) / o.connections,
          heapPerConnection: (heapAfter - heapBefore) / o.connections,
        };
        runs.push(r);
        bc.log(`  ${sys.id} rep ${rep}: ${(r.rssPerConnection / 1024).toFixed(2)} KB RSS, ${(r.heapPerConnection / 1024).toFixed(2)} KB heap per connection; ${connect.perSec} conn/s, ${connect.retries} retries`);
      } finally {
        await bc.generator.call('closeAll').catch(() => undefined);
        await running.stop();
      }
    }
  }
  const of = (id: string, f: (r: IdleRun) => number): number[] => runs.filter((r) => r.system === id).map(f);
  const kb = (v: number): number => v / 1024;
  printTable(
    `Idle connections (${o.connections} on one process) — both reps`,
    ['system', 'RSS KB/connection', 'heap KB/connection', 'RSS after (MB)', 'connections/s', 'refused+retried'],
    systems.map((s) => [
      s.id,
      pair(of(s.id, (r) => kb(r.rssPerConnection))),
      pair(of(s.id, (r) => kb(r.heapPerConnection))),
      pair(of(s.id, (r) => r.rssAfter / 1024 / 1024)),
      pair(of(s.id, (r) => r.connect.perSec)),
      pair(of(s.id, (r) => r.connect.retries)),
    ]),
  );
  const ratio = mean(of('bifrost', (r) => r.rssPerConnection)) / mean(of('ws', (r) => r.rssPerConnection));
  process.stdout.write(`Bifrost RSS/connection vs bare ws: ${ratioText(ratio, 1.2, 'max')}\n`);
  return { options: o, runs, ratios: { rssPerConnectionBifrostVsWs: ratio, heapPerConnectionBifrostVsWs: mean(of('bifrost', (r) => r.heapPerConnection)) / mean(of('ws', (r) => r.heapPerConnection)) } };
}
