/**
 * Scenario 3, idle connections: one Bifrost gateway process (Redis broker)
 * holding N idle native connections, against a bare `ws` server in the same
 * run. RSS and heap per connection = (after − before) / N, read with no
 * connection and after all N settled: the target's figure. A tenth of the
 * connections is opened first, with a reading after it, so the run also gives
 * the cost of each added connection, (after − that reading) / (N − a tenth).
 * The difference between the two is what the first connections cost once per
 * process (code compiled and paged in, heap and pool reservations); it
 * dominates a small N such as --quick's. Admission control stays on: refused
 * upgrades (503) are retried and counted.
 */
import type { BenchContext } from '../run.ts';
import type { ConnectGroup, ConnectResult } from '../harness/client-generator.ts';
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
  /** The opens after the middle reading (connections/s is theirs); `warmConnect` the first tenth's. */
  connect: ConnectResult;
  warmConnect: ConnectResult | undefined;
  /** RSS with no connection, after the first tenth, and after all N; heap with none and after all N. */
  rssBefore: number;
  rssWarm: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  /** Connections open at the middle reading (the first tenth). */
  warmConnections: number;
  /** (after − before) / N: the target's figure. */
  rssPerConnection: number;
  heapPerConnection: number;
  /** Each added connection: (after − warm reading) / (N − warm). */
  rssPerAddedConnection: number;
}

/** Connections opened before the middle reading: a tenth of N. */
/** Refused-then-retried upgrades over both batches. */
function retriesOf(r: IdleRun): number {
  return r.connect.retries + (r.warmConnect?.retries ?? 0);
}

function warmConnectionsFor(n: number): number {
  return Math.floor(n / 10);
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
        const open = async (groups: ConnectGroup[], count: number): Promise<ConnectResult> => {
          const connect = await bc.generator.call<ConnectResult>('connect', {
            groups,
            concurrency: 100,
            timeoutMs: 30_000,
            retry: { maxAttempts: 30, minDelayMs: 200, maxDelayMs: 3000 },
          });
          if (connect.opened !== count) throw new Error(`idle ${sys.id}: ${connect.opened} of ${count} connected: ${JSON.stringify(connect.errors)}`);
          return connect;
        };
        await sleep(1500);
        const rssBefore = rssBytes(pid);
        const heapBefore = (await running.heapUsed())[0]!;
        const warm = warmConnectionsFor(o.connections);
        // Distinct users from the main batch, so no user holds two connections.
        const warmConnect = warm > 0 ? await open(running.idleGroups(warm).map((g) => ({ ...g, userPrefix: 'warm' })), warm) : undefined;
        await sleep(1500);
        const rssWarm = rssBytes(pid);
        const connect = await open(running.idleGroups(o.connections - warm), o.connections - warm);
        await sleep(3000);
        const rssAfter = rssBytes(pid);
        const heapAfter = (await running.heapUsed())[0]!;
        const added = o.connections - warm;
        const r: IdleRun = {
          system: sys.id,
          rep,
          connect,
          warmConnect,
          rssBefore,
          rssWarm,
          rssAfter,
          heapBefore,
          heapAfter,
          warmConnections: warm,
          rssPerConnection: (rssAfter - rssBefore) / o.connections,
          heapPerConnection: (heapAfter - heapBefore) / o.connections,
          rssPerAddedConnection: (rssAfter - rssWarm) / added,
        };
        runs.push(r);
        bc.log(
          `  ${sys.id} rep ${rep}: ${(r.rssPerConnection / 1024).toFixed(2)} KB RSS, ${(r.heapPerConnection / 1024).toFixed(2)} KB heap per connection (each added one: ${(r.rssPerAddedConnection / 1024).toFixed(2)} KB RSS); ${connect.perSec} conn/s, ${retriesOf(r)} retries`,
        );
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
    ['system', 'RSS KB/connection', 'heap KB/connection', 'RSS KB per added connection', 'RSS after (MB)', 'connections/s', 'refused+retried'],
    systems.map((s) => [
      s.id,
      pair(of(s.id, (r) => kb(r.rssPerConnection))),
      pair(of(s.id, (r) => kb(r.heapPerConnection))),
      pair(of(s.id, (r) => kb(r.rssPerAddedConnection))),
      pair(of(s.id, (r) => r.rssAfter / 1024 / 1024)),
      pair(of(s.id, (r) => r.connect.perSec)),
      pair(of(s.id, retriesOf)),
    ]),
  );
  const ratioOf = (f: (r: IdleRun) => number): number => mean(of('bifrost', f)) / mean(of('ws', f));
  const ratio = ratioOf((r) => r.rssPerConnection);
  const added = ratioOf((r) => r.rssPerAddedConnection);
  process.stdout.write(`Bifrost RSS/connection vs bare ws: ${ratioText(ratio, 1.2, 'max')} (each added connection: ${added.toFixed(2)}×)\n`);
  return {
    options: o,
    runs,
    ratios: { rssPerConnectionBifrostVsWs: ratio, rssPerAddedConnectionBifrostVsWs: added, heapPerConnectionBifrostVsWs: ratioOf((r) => r.heapPerConnection) },
  };
}
