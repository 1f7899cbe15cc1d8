/**
 * `npm run bench`: Bifrost and the shim measured side by side with the systems
 * users would pick instead, in one run on one machine, reported as ratios.
 * See bench/README.md for the method and every option.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import { installCleanup, ROOT, stopAll } from './harness/processes.ts';
import { startRedis, type BenchRedis } from './harness/redis.ts';
import { startWorker, type Worker } from './harness/worker-rpc.ts';
import { writeResults } from './harness/report.ts';
import { ALL_FANOUT_SYSTEMS } from './systems/index.ts';
import { makeBifrost } from './systems/bifrost.ts';
import { runFanout, type FanoutOptions } from './scenarios/fanout.ts';
import { runShimProxy, type ShimProxyOptions } from './scenarios/shim-proxy.ts';
import { runIdle, type IdleOptions } from './scenarios/idle.ts';
import { runReconnectStorm, type StormOptions } from './scenarios/reconnect-storm.ts';

export const SCENARIOS = ['fanout', 'shim-proxy', 'idle', 'reconnect-storm'] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

export interface BenchContext {
  runId: string;
  redis: BenchRedis;
  generator: Worker;
  publisher: Worker;
  log: (msg: string) => void;
  /** Extra node flags for a system's server processes (`--profile` adds --cpu-prof to Bifrost's). */
  serverNodeArgs(systemId: string): string[];
}

const HELP = `npm run bench -- [options]

  --quick                 short steps and fewer connections (≤ 3 min); default is the full run (≤ 15 min)
  --only <list>           scenarios, comma separated: ${SCENARIOS.join(', ')}
  --systems <list>        fanout systems: ${ALL_FANOUT_SYSTEMS.map((s) => s.id).join(', ')}
  --reps <n>              measurements of each figure (default 2)
  --results-dir <dir>     where <timestamp>.json and latest.json go (default bench/results)
  --profile               run the fanout servers and the shim with --cpu-prof (profiles in <results-dir>/profiles/<run>/<system>)
  --baseline <dir>        also run Bifrost from another checkout <dir> ("bifrost-baseline"): before/after in one run
 fanout:
  --subscribers <n>       default 2000        --topics <n>        default 100
  --rates <a,b,…>         delivered msgs/s per step, stepped upward until a step fails
                          (default 25k,50k,75k,100k,130k,160k,200k,250k; quick 15k,40k)
  --step-seconds <n>      default 10 (quick 2.5)
  --all-steps             run every step even after one failed (compare at equal load; reference = last step)
 shim-proxy:
  --echo-connections <n>  default 100         --echo-inflight <n> default 16
  --echo-seconds <n>      default 10 (quick 2) --open-connections <n> default 2000 (quick 500)
  --warmup-connections <n> opened and closed through each path before the measured opens
                          (not recorded), default = --open-connections (quick 250)
 idle:
  --idle-connections <n>  default 19900 (quick 2000)
 reconnect-storm:
  --storm-clients <n>     default 5000 (quick 1000)
`;

function list(v: string | undefined): string[] | undefined {
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
}
function num(v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`expected a positive number, got "${v}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      systems: { type: 'string' },
      reps: { type: 'string' },
      'results-dir': { type: 'string' },
      profile: { type: 'boolean' },
      baseline: { type: 'string' },
      'all-steps': { type: 'boolean' },
      subscribers: { type: 'string' },
      topics: { type: 'string' },
      rates: { type: 'string' },
      'step-seconds': { type: 'string' },
      'echo-connections': { type: 'string' },
      'echo-inflight': { type: 'string' },
      'echo-seconds': { type: 'string' },
      'open-connections': { type: 'string' },
      'warmup-connections': { type: 'string' },
      'idle-connections': { type: 'string' },
      'storm-clients': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const quick = !!values.quick;
  const only = (list(values.only) ?? [...SCENARIOS]) as ScenarioId[];
  for (const s of only) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario "${s}" (known: ${SCENARIOS.join(', ')})`);
  const systemIds = list(values.systems) ?? ALL_FANOUT_SYSTEMS.map((s) => s.id);
  const systems = systemIds.map((id) => {
    const s = ALL_FANOUT_SYSTEMS.find((x) => x.id === id);
    if (!s) throw new Error(`unknown system "${id}" (known: ${ALL_FANOUT_SYSTEMS.map((x) => x.id).join(', ')})`);
    return s;
  });
  if (values.baseline) {
    // Another checkout's gateway as one more fanout system: before/after of a gateway change, in one run.
    const root = path.resolve(values.baseline);
    const baseline = makeBifrost('bifrost-baseline', `Bifrost from ${root}`, 'broker', root);
    const at = systems.findIndex((s) => s.id === 'bifrost');
    systems.splice(at + 1, 0, baseline);
  }
  const reps = num(values.reps, 2);
  const resultsDir = path.resolve(values['results-dir'] ?? path.join(ROOT, 'bench/results'));
  const startedAt = new Date();
  const runId = startedAt.getTime().toString(36);
  const profileDir = path.join(resultsDir, 'profiles', runId);
  if (values.profile) mkdirSync(profileDir, { recursive: true });

  installCleanup();
  const log = (m: string): void => void process.stderr.write(`[${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)} s] ${m}\n`);
  log(`bench ${quick ? '--quick' : 'full'}: ${only.join(', ')} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), node ${process.version}`);

  let redis: BenchRedis | undefined;
  let generator: Worker | undefined;
  let publisher: Worker | undefined;
  const results: Record<string, unknown> = {};
  const failures: string[] = [];
  /** Runs one scenario; a failure is recorded and the run goes on with the next one. */
  const scenario = async (id: ScenarioId, run: () => Promise<unknown>): Promise<void> => {
    try {
      results[id] = await run();
    } catch (err) {
      const message = (err as Error)?.stack ?? String(err);
      log(`${id} FAILED: ${message}`);
      failures.push(id);
      results[id] = { error: message };
      await generator?.call('closeAll', undefined, 60_000).catch(() => undefined);
    }
  };
  try {
    redis = await startRedis();
    generator = await startWorker('generator', 'bench/harness/client-generator.ts');
    publisher = await startWorker('publisher', 'bench/harness/publisher.ts');
    const bc: BenchContext = {
      runId,
      redis,
      generator,
      publisher,
      log,
      serverNodeArgs: (id) => (values.profile ? ['--cpu-prof', '--cpu-prof-dir', path.join(profileDir, id)] : []),
    };
    if (only.includes('fanout')) {
      const o: FanoutOptions = {
        subscribers: num(values.subscribers, 2000),
        topics: num(values.topics, 100),
        nodes: 2,
        payloadBytes: 200,
        stepSeconds: num(values['step-seconds'], quick ? 2.5 : 10),
        rates: (list(values.rates) ?? (quick ? ['15000', '40000'] : ['25000', '50000', '75000', '100000', '130000', '160000', '200000', '250000'])).map((r) => num(r, 0)),
        httpSteps: 1,
        p99LimitMs: 50,
        allSteps: !!values['all-steps'],
        reps,
        systems,
      };
      if (o.subscribers % o.topics !== 0) throw new Error('--subscribers must be a multiple of --topics');
      await scenario('fanout', () => runFanout(bc, o));
    }
    if (only.includes('shim-proxy')) {
      const o: ShimProxyOptions = {
        echoConnections: num(values['echo-connections'], 100),
        inflight: num(values['echo-inflight'], 16),
        messageBytes: 64,
        echoSeconds: num(values['echo-seconds'], quick ? 2 : 10),
        openConnections: num(values['open-connections'], quick ? 500 : 2000),
        openConcurrency: 50,
        // Quick mode warms with half its opens: --quick must stay within 3 minutes.
        bareHttpProxy: !quick,
        warmupConnections: num(values['warmup-connections'], quick ? 250 : num(values['open-connections'], 2000)),
        reps,
      };
      await scenario('shim-proxy', () => runShimProxy(bc, o));
    }
    if (only.includes('idle')) {
      const o: IdleOptions = { connections: num(values['idle-connections'], quick ? 2000 : 19_900), reps };
      await scenario('idle', () => runIdle(bc, o));
    }
    if (only.includes('reconnect-storm')) {
      const o: StormOptions = { clients: num(values['storm-clients'], quick ? 1000 : 5000), nodes: 2, reps };
      await scenario('reconnect-storm', () => runReconnectStorm(bc, o));
    }
  } finally {
    await publisher?.call('close', undefined, 5000).catch(() => undefined);
    await stopAll([generator?.child, publisher?.child, redis?.child]);
  }
  const file = writeResults(
    resultsDir,
    {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memBytes: os.totalmem(), node: process.version, platform: `${os.type()} ${os.release()}` },
      argv: process.argv.slice(2),
      scenarios: results,
    },
    startedAt,
  );
  log(`results: ${path.relative(process.cwd(), file)} (and latest.json)`);
  if (failures.length) throw new Error(`scenario(s) failed: ${failures.join(', ')} (see the log above; the result file records the error)`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
