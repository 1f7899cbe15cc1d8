/**
 * Scenario 1, fanout through Redis: 2 nodes of each system, S subscribers split
 * over both, T topics (S/T subscribers each), ~200-byte payloads, a fixed
 * publish rate stepped upward until a step loses a message or its p99 reaches
 * the bound. Per step: delivered msgs/s, latency percentiles (receive time −
 * intended send time), server CPU µs per delivered message (primary figure),
 * and the CPU of Redis, the publisher and the generator for reference.
 */
import type { BenchContext } from '../run.ts';
import type { LatencySummary } from '../harness/histogram.ts';
import type { PublishResult } from '../harness/publisher.ts';
import type { ConnectResult } from '../harness/client-generator.ts';
import { CpuMeter } from '../harness/cpu.ts';
import { sleep } from '../harness/processes.ts';
import { mean, pair, printTable, ratioText } from '../harness/report.ts';
import type { BenchSystem } from '../systems/system.ts';

export interface FanoutOptions {
  subscribers: number;
  topics: number;
  nodes: number;
  payloadBytes: number;
  stepSeconds: number;
  /** Delivered messages per second of each step. */
  rates: number[];
  /** Steps run for the HTTP publish variant (its figure is the private API's CPU per publish). */
  httpSteps: number;
  p99LimitMs: number;
  /** Run every step even after one failed (for comparisons at equal load); the default stops at the first failure. */
  allSteps?: boolean;
  reps: number;
  systems: BenchSystem[];
}

export interface FanoutStep {
  targetDeliveredPerSec: number;
  publishPerSec: number;
  publish: PublishResult;
  expected: number;
  received: number;
  lost: number;
  deliveredPerSec: number;
  latency: LatencySummary;
  /** Worst latency (ms) of the events scheduled in each second of the step, in order. */
  worstMsBySecond: number[];
  cpu: { serverUs: number; serverUsPerMsg: number; mainThreadUsPerMsg: number; perNodeUs: number[]; redisUs: number; redisUsPerPublish: number; publisherUs: number; generatorUs: number; wallMs: number };
  pass: boolean;
  why?: string;
}

export interface FanoutRun {
  system: string;
  rep: number;
  connect: ConnectResult;
  steps: FanoutStep[];
  /** Highest delivered msgs/s of a passing step. */
  sustainableDeliveredPerSec: number;
}

export interface FanoutResult {
  options: Omit<FanoutOptions, 'systems'> & { systems: string[] };
  runs: FanoutRun[];
  summary: Record<string, unknown>;
}

/** Waits until no message arrived for 500 ms (at most 10 s): a backlog must not leak into the next step. */
async function settle(bc: BenchContext): Promise<void> {
  let last = -1;
  for (let i = 0; i < 40; i++) {
    const got = await bc.generator.call<number>('received');
    if (got === last) return;
    last = got;
    await sleep(500);
  }
}

async function runOne(bc: BenchContext, o: FanoutOptions, sys: BenchSystem, rep: number): Promise<FanoutRun> {
  const log = bc.log;
  const running = await sys.start({ redisUrl: bc.redis.url, nodes: o.nodes, runId: bc.runId, nodeArgs: bc.serverNodeArgs(sys.id) });
  try {
    const topics = running.topics(o.topics);
    const perTopic = o.subscribers / o.topics;
    const connect = await bc.generator.call<ConnectResult>('connect', { groups: running.subscriberGroups(o.subscribers, topics), concurrency: 100, timeoutMs: 20_000, retry: { maxAttempts: 30, minDelayMs: 200, maxDelayMs: 2000 } });
    if (connect.opened !== o.subscribers) throw new Error(`${sys.id}: only ${connect.opened} of ${o.subscribers} subscribers connected: ${JSON.stringify(connect.errors)}`);
    await bc.publisher.call('setup', running.publisher(o.payloadBytes));
    // Warm-up (JIT, Redis subscriptions), not recorded.
    await bc.publisher.call('run', { topics, rate: Math.max(10, o.rates[0]! / perTopic / 2), durationMs: Math.min(2000, o.stepSeconds * 500) });
    await settle(bc);
    await bc.generator.call('snapshot', { reset: true });
    const steps: FanoutStep[] = [];
    const rates = sys.id === 'bifrost-http' ? o.rates.slice(0, o.httpSteps) : o.rates;
    const servers = new CpuMeter(() => running.pids());
    const others = new CpuMeter(() => [bc.redis.child.pid, bc.publisher.child.pid, bc.generator.child.pid]);
    for (const target of rates) {
      const publishPerSec = target / perTopic;
      servers.begin();
      others.begin();
      const publish = await bc.publisher.call<PublishResult>('run', { topics, rate: publishPerSec, durationMs: o.stepSeconds * 1000 });
      const intended = Math.round(o.stepSeconds * publishPerSec);
      const expected = intended * perTopic;
      // Let in-flight messages arrive: until all are in, or nothing moved for 500 ms (at most 5 s).
      let last = -1;
      let still = 0;
      for (let i = 0; i < 50; i++) {
        const got = await bc.generator.call<number>('received');
        if (got >= expected) break;
        still = got === last ? still + 1 : 0;
        if (still >= 5) break;
        last = got;
        await sleep(100);
      }
      const snap = await bc.generator.call<{ received: number; latency: LatencySummary; worstMsBySecond: number[] }>('snapshot', { reset: true });
      const s = servers.end();
      const x = others.end();
      const lost = Math.max(0, expected - snap.received);
      const pass = lost === 0 && snap.latency.p99 < o.p99LimitMs;
      const step: FanoutStep = {
        targetDeliveredPerSec: target,
        publishPerSec,
        publish,
        expected,
        received: snap.received,
        lost,
        deliveredPerSec: Math.round(snap.received / o.stepSeconds),
        latency: snap.latency,
        worstMsBySecond: snap.worstMsBySecond,
        cpu: {
          serverUs: Math.round(s.totalUs),
          serverUsPerMsg: snap.received ? s.totalUs / snap.received : NaN,
          mainThreadUsPerMsg: snap.received ? s.mainUs / snap.received : NaN,
          perNodeUs: running.pids().map((p) => Math.round(s.perPid[p] ?? 0)),
          redisUs: Math.round(x.perPid[bc.redis.child.pid] ?? 0),
          redisUsPerPublish: (x.perPid[bc.redis.child.pid] ?? 0) / Math.max(1, publish.sent),
          publisherUs: Math.round(x.perPid[bc.publisher.child.pid] ?? 0),
          generatorUs: Math.round(x.perPid[bc.generator.child.pid] ?? 0),
          wallMs: Math.round(s.wallMs),
        },
        pass,
        why: pass ? undefined : lost ? lostWhy(lost, publish, perTopic) : `p99 ${snap.latency.p99} ms`,
      };
      steps.push(step);
      log(
        `  ${sys.id} rep ${rep} step ${target}/s: delivered ${step.deliveredPerSec}/s, p50 ${snap.latency.p50} p99 ${snap.latency.p99} ms, ` +
          `server ${step.cpu.serverUsPerMsg.toFixed(2)} µs/msg (main thread ${step.cpu.mainThreadUsPerMsg.toFixed(2)})${pass ? '' : ` — FAIL (${step.why}; ${secondsOver(snap.worstMsBySecond, o.p99LimitMs)})`}`,
      );
      if (!pass && !o.allSteps) break;
      await sleep(200);
    }
    await bc.generator.call('closeAll');
    // Sustainable: the highest step of the unbroken run of passing steps from the bottom.
    const firstFail = steps.findIndex((s) => !s.pass);
    const passing = firstFail < 0 ? steps : steps.slice(0, firstFail);
    return { system: sys.id, rep, connect, steps, sustainableDeliveredPerSec: passing.length ? Math.max(...passing.map((s) => s.deliveredPerSec)) : 0 };
  } finally {
    await bc.generator.call('closeAll').catch(() => undefined);
    await running.stop();
  }
}

/**
 * A step's losses split by where they happened: publishes the publisher never
 * made (too many in flight: the system did not take them in time) or that were
 * refused, and events that were published but did not arrive.
 */
export function lostWhy(lost: number, publish: Pick<PublishResult, 'skipped' | 'failed'>, perTopic: number): string {
  const neverSent = (publish.skipped + publish.failed) * perTopic;
  if (neverSent === 0) return `lost ${lost}: published, not received`;
  const n = (k: number): string => `${k} publish${k === 1 ? '' : 'es'}`;
  const parts = [publish.skipped ? `${n(publish.skipped)} skipped (too many in flight)` : '', publish.failed ? `${n(publish.failed)} refused` : ''].filter(Boolean);
  return `lost ${lost}: ${parts.join(', ')} → ${Math.min(lost, neverSent)} never sent; ${Math.max(0, lost - neverSent)} published, not received`;
}

/**
 * Which seconds of a step had an event at or over the latency bound: a stall
 * shows as one or two seconds, a backlog as every second from some point on.
 */
export function secondsOver(worstMsBySecond: number[], limitMs: number): string {
  const over = worstMsBySecond.map((ms, i) => [i, ms] as const).filter(([, ms]) => ms >= limitMs);
  if (over.length === 0) return `no second's worst event reached ${limitMs} ms`;
  const worst = over.reduce((a, b) => (b[1] > a[1] ? b : a));
  return `${over.length} of ${worstMsBySecond.length} seconds had an event ≥ ${limitMs} ms (s${over.map(([i]) => i).join(',s')}; worst ${worst[1]} ms in s${worst[0]})`;
}

/** CPU µs/msg of a system at a step (one value per rep). */
function cpuAt(runs: FanoutRun[], system: string, target: number): number[] {
  return runs
    .filter((r) => r.system === system)
    .map((r) => r.steps.find((s) => s.targetDeliveredPerSec === target)?.cpu.serverUsPerMsg ?? NaN);
}

export async function runFanout(bc: BenchContext, o: FanoutOptions): Promise<FanoutResult> {
  const runs: FanoutRun[] = [];
  // Reps interleave the systems (A B C, A B C) so drift on the shared machine hits all of them.
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const sys of o.systems) {
      bc.log(`fanout: ${sys.label}, rep ${rep}`);
      runs.push(await runOne(bc, o, sys, rep));
    }
  }
  const ids = o.systems.map((s) => s.id);
  const main = ids.filter((id) => id !== 'bifrost-http');
  // The reference step: the highest step every system passed in every rep (CPU per message falls with load, so compare at equal load).
  const passedBy = (target: number) => main.every((id) => runs.filter((r) => r.system === id).every((r) => r.steps.some((s) => s.targetDeliveredPerSec === target && s.pass)));
  const reference = [...o.rates].reverse().find(passedBy) ?? (o.allSteps ? o.rates[o.rates.length - 1]! : o.rates[0]!);
  const cpu: Record<string, number[]> = {};
  for (const id of ids) cpu[id] = cpuAt(runs, id, id === 'bifrost-http' ? Math.min(reference, o.rates[o.httpSteps - 1] ?? reference) : reference);
  const sustainable: Record<string, number[]> = {};
  for (const id of main) sustainable[id] = runs.filter((r) => r.system === id).map((r) => r.sustainableDeliveredPerSec);
  const ratio = (a: string, b: string, f: Record<string, number[]>): number => mean(f[a] ?? []) / mean(f[b] ?? []);
  const summary: Record<string, unknown> = {
    referenceStepDeliveredPerSec: reference,
    serverCpuUsPerMsgAtReference: cpu,
    sustainableDeliveredPerSec: sustainable,
    ratios: {
      cpuBifrostVsSocketio: ratio('bifrost', 'socket.io', cpu),
      cpuBifrostVsWs: ratio('bifrost', 'ws', cpu),
      sustainableBifrostVsWs: ratio('bifrost', 'ws', sustainable),
      sustainableBifrostVsSocketio: ratio('bifrost', 'socket.io', sustainable),
    },
    zeroLossAtPassingSteps: runs.every((r) => r.steps.filter((s) => s.pass).every((s) => s.lost === 0)),
  };
  // Private API CPU per publish, by difference with the broker variant at the same step and rep.
  if (ids.includes('bifrost-http') && ids.includes('bifrost')) {
    const perPublish: number[] = [];
    for (const h of runs.filter((r) => r.system === 'bifrost-http')) {
      const b = runs.find((r) => r.system === 'bifrost' && r.rep === h.rep);
      for (const hs of h.steps) {
        const bs = b?.steps.find((s) => s.targetDeliveredPerSec === hs.targetDeliveredPerSec);
        if (bs && hs.publish.sent > 0) perPublish.push((hs.cpu.serverUs - (bs.cpu.serverUs / Math.max(1, bs.publish.sent)) * hs.publish.sent) / hs.publish.sent);
      }
    }
    summary.privateApiCpuUsPerPublish = perPublish;
  }

  // Tables.
  const rows: (string | number)[][] = [];
  for (const r of runs) {
    for (const s of r.steps) {
      rows.push([r.system, r.rep, s.targetDeliveredPerSec, s.deliveredPerSec, s.lost, `${s.latency.p50} / ${s.latency.p99} / ${s.latency.p999}`, s.cpu.serverUsPerMsg, s.cpu.mainThreadUsPerMsg, s.cpu.redisUs / Math.max(1, s.received), s.pass ? 'pass' : `FAIL ${s.why}`]);
    }
  }
  printTable('Fanout through Redis — every step', ['system', 'rep', 'target msg/s', 'delivered/s', 'lost', 'p50 / p99 / p999 ms', 'server µs/msg', 'main thread µs/msg', 'redis µs/msg', 'step'], rows);
  const sumRows = ids.map((id) => [
    id,
    pair(cpu[id] ?? []),
    id === 'bifrost-http' ? 'n/a (HTTP publish variant)' : pair(sustainable[id] ?? []),
    id === 'bifrost' ? '1.00' : (mean(cpu.bifrost ?? []) / mean(cpu[id] ?? [])).toFixed(2),
  ]);
  printTable(
    `Fanout summary (server CPU at the ${reference} msg/s step, both reps)`,
    ['system', 'server CPU µs/msg', 'sustainable delivered/s', 'Bifrost CPU ÷ this'],
    sumRows,
  );
  const rt = summary.ratios as Record<string, number>;
  process.stdout.write(
    `Bifrost CPU/msg vs Socket.IO: ${ratioText(rt.cpuBifrostVsSocketio!, 0.55, 'max')}\n` +
      `Bifrost CPU/msg vs bare ws:   ${ratioText(rt.cpuBifrostVsWs!, 0.8, 'max')}\n` +
      `Bifrost sustainable vs ws:    ${ratioText(rt.sustainableBifrostVsWs!, 1.0, 'min')}\n` +
      (summary.privateApiCpuUsPerPublish ? `Private API CPU per HTTP publish (by difference): ${pair(summary.privateApiCpuUsPerPublish as number[])} µs\n` : ''),
  );
  return { options: { ...o, systems: ids }, runs, summary };
}
