/**
 * What a ramp does when things go wrong around it, on a real flags file, the
 * file ramp store and a stand-in shim admin API (it applies the flags file
 * after a reload lag, like the shim): a rollback write that fails is retried
 * until it lands and survives a dead process (`rolling-back`, finished by
 * --resume, the breaching step never applied again); the drain is asked only
 * once the shim routes the rolled-back percentage; a ramp never starts below
 * the current percentage nor rolls back above the breaching step; a step the
 * shim does not apply is not watched as if it were.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readRollout, writeRollout } from '../../proxy/flags-file.ts';
import { parsePrometheusText } from '../../cli/migration/prometheus-text.ts';
import { CliError } from '../../cli/output.ts';
import { FileFlagTarget } from '../../cli/rollout/flag-target-file.ts';
import type { FlagRollout, FlagTarget, FlagWrite, FlagWriteResult } from '../../cli/rollout/flag-target.ts';
import { SHIM_SOURCE, type Scrape } from '../../cli/rollout/metrics-window.ts';
import { PlainRampReporter } from '../../cli/rollout/progress-bar.ts';
import type { RampPlan } from '../../cli/rollout/ramp-plan.ts';
import { withEvent, type RampDoc } from '../../cli/rollout/ramp-state.ts';
import type { RampDecision, RampStore } from '../../cli/rollout/ramp-store.ts';
import { rollbackTarget, runRamp, type RampDeps } from '../../cli/rollout/ramp-runner.ts';
import { FileRampStore } from '../../cli/rollout/ramp-store-file.ts';
import { cleanEnv, runBifrost } from '../support/cli-stack.ts';
import { ShimAdminClient } from '../../cli/rollout/shim-admin-client.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-ramp-safety-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A stand-in for the shim's admin API: reports the flags file's percentage `lagMs` after it changes (never, when frozen). */
class FakeShim {
  applied = 0;
  frozen = false;
  drains: { at: number; shimPercent: number }[] = [];
  private server!: http.Server;
  private timer!: NodeJS.Timeout;
  private seen = -1;
  url = '';

  constructor(
    private readonly flagsFile: string,
    private readonly lagMs = 300,
  ) {}

  async start(): Promise<void> {
    this.applied = (await readRollout(this.flagsFile)).percent;
    this.seen = this.applied;
    this.timer = setInterval(() => {
      void readRollout(this.flagsFile).then((r) => {
        if (r.percent === this.seen || this.frozen) return;
        this.seen = r.percent;
        setTimeout(() => (this.applied = r.percent), this.lagMs);
      });
    }, 25);
    this.server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/api/rollout') {
        res.end(
          JSON.stringify({ source: 'file', flagsFile: this.flagsFile, mode: 'proxied', percent: this.applied, bucketBy: 'user', version: 1, decisions: { sync: 0, bifrost: 0, byReason: {} }, connections: { sync: 0, bifrost: 0, websocket: 0, polling: 0, nodes: [] }, drain: { policy: 'close', rate: 100, queued: 0, closed: 0 }, flagReloads: { ok: 1, errors: 0, lastError: null } }),
        );
        return;
      }
      if (req.url === '/api/drain' && req.method === 'POST') {
        this.drains.push({ at: Date.now(), shimPercent: this.applied });
        res.end(JSON.stringify({ queued: 0, rate: 100, scope: 'changed' }));
        return;
      }
      res.statusCode = 404;
      res.end('{}');
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await new Promise((r) => this.server.close(r));
  }
}

/** A flag target whose calls fail while `failWrite` / `failRead` say so (a blip on the way to the flag). */
class FlakyFlag implements FlagTarget {
  readonly kind = 'file' as const;
  readonly description: string;
  readonly file: string;
  writes: number[] = [];
  /** Every write asked, whole (its `rollback` flag included). */
  changes: FlagWrite[] = [];
  constructor(
    private readonly inner: FileFlagTarget,
    public failWrite: (percent: number, attempt: number) => boolean = () => false,
    public failRead: (attempt: number) => boolean = () => false,
  ) {
    this.description = inner.description;
    this.file = inner.file;
  }
  private reads = 0;
  async read(): Promise<FlagRollout> {
    this.reads += 1;
    if (this.failRead(this.reads)) throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    return this.inner.read();
  }
  async write(change: FlagWrite): Promise<FlagWriteResult> {
    this.writes.push(change.percent);
    this.changes.push(change);
    const attempt = this.writes.filter((p) => p === change.percent).length;
    if (this.failWrite(change.percent, attempt)) throw Object.assign(new Error(`write of ${change.percent}% failed: connect ETIMEDOUT`), { code: 'ETIMEDOUT' });
    return this.inner.write(change);
  }
}

/** Scrapes whose counters grow each time: Bifrost upgrades that fail (`bad`) or succeed, and gateway requests. */
function sampler(kind: () => 'bad' | 'good') {
  let n = 0;
  return {
    async scrape(): Promise<Scrape> {
      n += 1;
      const bad = kind() === 'bad';
      const shim = parsePrometheusText(
        [
          `bifrost_shim_upgrades_total{backend="bifrost",outcome="${bad ? 'error' : 'ok'}"} ${n * 50}`,
          `bifrost_shim_upgrades_total{backend="sync",outcome="ok"} ${n * 50}`,
          `bifrost_shim_decisions_total{route="bifrost",reason="flag",source="socket"} ${n * 50}`,
        ].join('\n'),
      );
      const gw = parsePrometheusText(`bifrost_requests_total{protocol="native",service="sync",status="200"} ${n * 100}\n`);
      return { at: Date.now(), sources: new Map([[SHIM_SOURCE, shim], ['http://gw', gw]]), failures: [], gateways: ['http://gw'], shimMode: 'proxied' };
    },
  };
}

const plan = (o: Partial<RampPlan> = {}): RampPlan => ({ steps: [10], intervalMs: 400, maxErrorRate: 0.01, maxP99Ms: null, rollbackTo: null, minRequests: 1, bucketBy: null, ...o });

let n = 0;
async function setup(startPercent: number, lagMs = 300) {
  const id = ++n;
  const flagsFile = join(dir, `flags-${id}.json`);
  await writeRollout(flagsFile, { percent: startPercent, bucketBy: 'user' });
  const shim = new FakeShim(flagsFile, lagMs);
  await shim.start();
  shims.push(shim);
  const lines: string[] = [];
  const sink = { write: (s: string) => (lines.push(s), true) } as unknown as NodeJS.WritableStream;
  const store = new FileRampStore(join(dir, `ramp-${id}.json`));
  const admin = new ShimAdminClient(shim.url, 'token', 1000);
  const deps = (flag: FlagTarget, health: () => 'bad' | 'good', over: Partial<RampDeps> = {}): RampDeps => ({
    store,
    flag,
    admin,
    sampler: sampler(health),
    reporter: new PlainRampReporter(sink, 60_000),
    tickMs: 50,
    sampleEveryMs: 50,
    retryMinWaitMs: 20,
    applyTimeoutMs: 3000,
    ...over,
  });
  return { flagsFile, shim, store, lines, deps, file: new FileFlagTarget(flagsFile) };
}
const shims: FakeShim[] = [];
afterEach(async () => {
  await Promise.all(shims.splice(0).map((s) => s.stop()));
});

describe('rollback when the flag write fails', () => {
  it('retries the rollback write with backoff until it lands, then drains once the shim routes the rolled-back percentage', async () => {
    const t = await setup(0);
    const flag = new FlakyFlag(t.file, (p, attempt) => p === 0 && attempt <= 3);
    const out = await runRamp({ plan: plan(), resume: false, restart: false }, t.deps(flag, () => 'bad'));
    expect(out.kind).toBe('rolled-back');
    expect(out.rolledBackTo).toBe(0);
    expect(flag.writes).toEqual([10, 0, 0, 0, 0]);
    // The step is a plain write; the rollback to 0% is written as a rollback (live LaunchDarkly then turns targeting off).
    expect(flag.changes.map((c) => c.rollback === true)).toEqual([false, true, true, true, true]);
    expect((await readRollout(t.flagsFile)).percent).toBe(0);
    expect(t.lines.filter((l) => /^retry: writing the rollback to 0% failed \(write of 0% failed: connect ETIMEDOUT\); retrying with backoff/.test(l))).toHaveLength(3);
    expect(await t.store.read()).toMatchObject({ phase: 'rolled-back', percent: 0, owner: null, rollback: { to: 0, from: 10 } });
    // The drain is asked after the shim reports 0% (it applies the file 300 ms after the write), not while it still routes 10%.
    expect(t.shim.drains).toHaveLength(1);
    expect(t.shim.drains[0]!.shimPercent).toBe(0);
    expect(out.applyCheck).toMatchObject({ state: 'applied' });
  });

  it('leaves a rollback that never landed as rolling-back, and --resume finishes it without applying the breaching step again', async () => {
    const t = await setup(0);
    const broken = new FlakyFlag(t.file, (p) => p === 0);
    const first = await runRamp({ plan: plan({ steps: [10, 20] }), resume: false, restart: false }, t.deps(broken, () => 'bad', { rollbackRetryMs: 300 }));
    expect(first.kind).toBe('rollback-unfinished');
    expect(first.message).toMatch(/could not write the rollback to 0% .*the ramp is recorded as rolling back; `bifrost rollout ramp --resume` finishes it/);
    expect((await readRollout(t.flagsFile)).percent).toBe(10);
    expect(await t.store.read()).toMatchObject({ phase: 'rolling-back', owner: null, rollback: { to: 0, from: 10 } });

    // Another plan is refused until the rollback is finished, --restart included.
    await expect(runRamp({ plan: plan({ steps: [30] }), resume: false, restart: true }, t.deps(t.file, () => 'good'))).rejects.toThrow(/its rollback to 0% is not confirmed written .*bifrost rollout ramp --resume/);

    const healed = new FlakyFlag(t.file);
    const second = await runRamp({ plan: null, resume: true, restart: false }, t.deps(healed, () => 'good'));
    expect(second.kind).toBe('rolled-back');
    expect(second.resumed).toBe(true);
    expect(healed.writes).toEqual([0]); // 10% was not written again
    expect(second.applied).toEqual([]);
    expect((await readRollout(t.flagsFile)).percent).toBe(0);
    expect(await t.store.read()).toMatchObject({ phase: 'rolled-back', percent: 0, owner: null });
  });

  it('retries a flag read that fails for a moment during the ramp', async () => {
    const t = await setup(0, 20);
    const flag = new FlakyFlag(t.file, () => false, (attempt) => attempt === 2 || attempt === 3);
    const out = await runRamp({ plan: plan({ steps: [5, 10] }), resume: false, restart: false }, t.deps(flag, () => 'good'));
    expect(out.kind, out.message).toBe('completed');
    expect((await readRollout(t.flagsFile)).percent).toBe(10);
    expect(t.lines.some((l) => /^retry: reading the flag failed \(read ECONNRESET\)/.test(l))).toBe(true);
  });
});

describe('a ramp only moves forward', () => {
  it('refuses (exit 2) a first step below the current percentage and leaves the flag alone', async () => {
    const t = await setup(25);
    const err = await runRamp({ plan: plan({ steps: [1, 5, 25, 50, 100] }), resume: false, restart: false }, t.deps(t.file, () => 'good')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    expect((err as CliError).message).toMatch(/the rollout is at 25% and the first step is 1%: a ramp only moves forward — give steps from 25% up \(e\.g\. --steps 50,100\)/);
    expect((await readRollout(t.flagsFile)).percent).toBe(25);
    expect(await t.store.read()).toBeNull();
  });

  it('never rolls back above the breaching step, whatever --rollback-to says', async () => {
    expect(rollbackTarget({ rollbackTo: 30 }, 0, 10)).toMatchObject({ to: 0 });
    expect(rollbackTarget({ rollbackTo: 5 }, 0, 10)).toEqual({ to: 5, why: '--rollback-to' });
    expect(rollbackTarget({ rollbackTo: null }, 40, 25)).toMatchObject({ to: 0 });
    const t = await setup(2);
    const flag = new FlakyFlag(t.file);
    const out = await runRamp({ plan: plan({ steps: [10], rollbackTo: 30 }), resume: false, restart: false }, t.deps(flag, () => 'bad'));
    expect(out.kind).toBe('rolled-back');
    expect(out.rolledBackTo).toBe(2);
    // A rollback that keeps some users on Bifrost is a plain percentage write (targeting is left as it is).
    expect(flag.changes.map((c) => [c.percent, c.rollback === true])).toEqual([[10, false], [2, false]]);
    expect(out.message).toMatch(/rolled back to 2% \(last good step; --rollback-to 30% is not below the breaching 10%\)/);
    expect((await readRollout(t.flagsFile)).percent).toBe(2);
  });
});

describe('the shim applies each step', () => {
  it('rolls back instead of watching a step the shim answers for but does not apply', async () => {
    const t = await setup(0);
    t.shim.frozen = true;
    const out = await runRamp({ plan: plan({ steps: [10, 20] }), resume: false, restart: false }, t.deps(t.file, () => 'good', { applyTimeoutMs: 400 }));
    expect(out.kind).toBe('rolled-back');
    expect(out.breaches.map((b) => b.guard)).toEqual(['flag-not-applied']);
    expect(out.breaches[0]!.text).toMatch(/the shim at http:\/\/127\.0\.0\.1:\d+ still routes 0% by user .* after 10% was written to flags file/);
    expect(out.applied).toEqual([10]);
    expect((await readRollout(t.flagsFile)).percent).toBe(0);
  });
});

describe('bifrost rollout rollback and the shim', () => {
  const rollback = (t: Awaited<ReturnType<typeof setup>>, id: string) =>
    runBifrost(['rollout', 'rollback', '--json', '--flags-file', t.flagsFile, '--ramp-file', join(dir, `ramp-cli-${id}.json`), '--admin-url', t.shim.url, '--apply-timeout', '2s'], { cwd: dir, env: cleanEnv() });

  it('asks for the drain only once the shim routes 0% (it applies the file 400 ms after the write)', async () => {
    const t = await setup(30, 400);
    const r = await rollback(t, 'a');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ percent: 0, shimApplied: { state: 'applied', shimPercent: 0 }, drain: { queued: 0 } });
    expect(t.shim.drains).toHaveLength(1);
    expect(t.shim.drains[0]!.shimPercent).toBe(0);
  }, 120_000);

  it('exits 1 and asks no drain when the shim answers but keeps routing the old percentage', async () => {
    const t = await setup(30);
    t.shim.frozen = true;
    const r = await rollback(t, 'b');
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { shimApplied: { state: string }; drain: { error: string } };
    expect(out.shimApplied.state).toBe('not-applied');
    expect(out.drain.error).toMatch(/^not asked: the shim at http:\/\/127\.0\.0\.1:\d+ still routes 30% by user .* after 0% was written/);
    expect(t.shim.drains).toHaveLength(0);
    expect((await readRollout(t.flagsFile)).percent).toBe(0);
  }, 120_000);
});

/** A flag target that runs `before` ahead of each write attempt and `after` once one landed (or failed: `fail`). */
class HookedFlag implements FlagTarget {
  readonly kind = 'file' as const;
  readonly description: string;
  readonly file: string;
  writes: number[] = [];
  last = -1;
  constructor(
    private readonly inner: FileFlagTarget,
    private readonly hooks: { fail?: (percent: number, attempt: number) => boolean; before?: (percent: number, attempt: number) => Promise<void>; after?: (percent: number, attempt: number) => Promise<void> } = {},
  ) {
    this.description = inner.description;
    this.file = inner.file;
  }
  read(): Promise<FlagRollout> {
    return this.inner.read();
  }
  async write(change: FlagWrite): Promise<FlagWriteResult> {
    this.writes.push(change.percent);
    const attempt = this.writes.filter((p) => p === change.percent).length;
    await this.hooks.before?.(change.percent, attempt);
    if (this.hooks.fail?.(change.percent, attempt)) throw Object.assign(new Error(`write of ${change.percent}% failed: connect ETIMEDOUT`), { code: 'ETIMEDOUT' });
    const r = await this.inner.write(change);
    this.last = change.percent;
    await this.hooks.after?.(change.percent, attempt);
    return r;
  }
}

/** What `bifrost rollout rollback` does first: the ramp "rolling back to 0%", no owner. */
const endFromElsewhere = (store: RampStore) =>
  store.update((cur) => {
    if (!cur || (cur.phase !== 'running' && cur.phase !== 'rolling-back')) return { result: null };
    const now = new Date();
    return { next: withEvent({ ...cur, phase: 'rolling-back', owner: null, rollback: { to: 0, from: cur.percent, message: 'rolled back to 0% by `bifrost rollout rollback` (test)', decidedAt: now.toISOString() } }, { event: 'rolling-back', percent: 0, detail: 'by test' }, now), result: null };
  });

/** A store whose update lands but whose reply is lost (a transient error) when `lose(doc written)` says so. */
class LostReplyStore implements RampStore {
  lost: string[] = [];
  constructor(
    private readonly inner: RampStore,
    private readonly lose: (written: RampDoc) => string | null,
  ) {}
  get description() {
    return this.inner.description;
  }
  read() {
    return this.inner.read();
  }
  async update<T>(decide: (current: RampDoc | null) => RampDecision<T>): Promise<T> {
    let written: RampDoc | undefined;
    const r = await this.inner.update((cur) => {
      const d = decide(cur);
      written = d.next;
      return d;
    });
    const what = written && this.lose(written);
    if (what && !this.lost.includes(what)) {
      this.lost.push(what);
      throw Object.assign(new Error(`reply lost (${what})`), { code: 'ECONNRESET' });
    }
    return r;
  }
  close() {
    return this.inner.close();
  }
}

describe('a ramp ended from elsewhere while it writes', () => {
  it('checks ownership before every attempt of a step write (and keeps its heartbeat fresh), so a retried write never lands after `rollout rollback`', async () => {
    const t = await setup(0, 20);
    const heartbeats: number[] = [];
    const flag = new HookedFlag(t.file, {
      fail: (p, attempt) => p === 20 && attempt <= 3,
      before: async (p, attempt) => {
        if (p !== 20) return;
        heartbeats.push((await t.store.read())!.owner?.heartbeatAt ?? -1);
        if (attempt === 2) {
          await endFromElsewhere(t.store);
          await t.file.write({ percent: 0, comment: 'rollback' });
        }
      },
    });
    const out = await runRamp({ plan: plan({ steps: [10, 20], intervalMs: 300 }), resume: false, restart: false }, t.deps(flag, () => 'good'));
    expect(out.kind, out.message).toBe('stopped');
    expect(out.message).toMatch(/ended from elsewhere/);
    expect(flag.writes).toEqual([10, 20, 20]); // no attempt after the ramp was ended
    expect((await readRollout(t.flagsFile)).percent).toBe(0);
    // Each attempt refreshed the lease's heartbeat (the tick loop does not run during a write's retries).
    expect(heartbeats[1]!).toBeGreaterThan(heartbeats[0]!);
    expect((await t.store.read())!.history.some((e) => e.event === 'process-stopped')).toBe(true);
  });

  it("does not overwrite `rollout rollback`'s record with its own rollback (ended while it was rolling back)", async () => {
    const t = await setup(0, 20);
    const flag: HookedFlag = new HookedFlag(t.file, {
      after: async (p) => {
        if (p === 10 && flag.writes.filter((x) => x === 10).length === 2) await endFromElsewhere(t.store); // the rollback's write landed
      },
    });
    const out = await runRamp({ plan: plan({ steps: [10, 25], intervalMs: 300 }), resume: false, restart: false }, t.deps(flag, () => (flag.last >= 25 ? 'bad' : 'good')));
    expect(flag.writes).toEqual([10, 25, 10]);
    expect(out.kind, out.message).toBe('stopped');
    expect(out.message).toMatch(/ended from elsewhere .*while rolling back to 10%/);
    expect(await t.store.read()).toMatchObject({ phase: 'rolling-back', rollback: { to: 0 }, owner: null });
  });
});

describe('`rollout rollback` and a late write by the ramp it ended', () => {
  it('re-reads the flag even when the ramp looked dead, and writes 0% again after a late step write', async () => {
    // Not 0 at the start: the stalled write below must wait until `rollout rollback` has written 0% (marking the
    // ramp rolling-back comes first), or the late write would land before the rollback's and nothing be "late".
    const t = await setup(5, 20);
    let rollback: ReturnType<typeof runBifrost> | undefined;
    const flag = new HookedFlag(t.file, {
      before: async (p) => {
        if (p !== 25 || rollback) return;
        // This attempt passed its ownership check; now it stalls (no heartbeat for a minute: the lease looks dead)…
        await t.store.update((cur) => ({ next: { ...cur!, owner: { ...cur!.owner!, heartbeatAt: Date.now() - 60_000 } }, result: null }));
        // …while `rollout rollback` ends the ramp and writes 0%; then the stalled write lands.
        rollback = runBifrost(['rollout', 'rollback', '--json', '--flags-file', t.flagsFile, '--ramp-file', t.store.file, '--admin-url', t.shim.url, '--apply-timeout', '2s'], { cwd: dir, env: cleanEnv() });
        const until = Date.now() + 30_000;
        while ((await readRollout(t.flagsFile)).percent !== 0 || (await t.store.read())?.phase === 'running') {
          if (Date.now() > until) throw new Error('rollout rollback did not write 0%');
          await new Promise((r) => setTimeout(r, 25));
        }
      },
    });
    const out = await runRamp({ plan: plan({ steps: [25], intervalMs: 60_000 }), resume: false, restart: false }, t.deps(flag, () => 'good', { host: 'another-host' }));
    expect(out.kind, out.message).toBe('stopped');
    const r = await rollback!;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: the ramp's process wrote 25% after the rollback; writing 0% again/);
    expect((await readRollout(t.flagsFile)).percent).toBe(0);
    expect(await t.store.read()).toMatchObject({ phase: 'rolled-back', percent: 0 });
  }, 120_000);
});

describe('store updates retried after a lost reply', () => {
  it('taking the lease and recording the rollback are done once, not refused or stopped by their own first write', async () => {
    const t = await setup(0, 20);
    const store = new LostReplyStore(t.store, (d) => (d.history.length === 1 ? 'lease' : d.phase === 'rolling-back' ? 'rollback' : null));
    const out = await runRamp({ plan: plan({ steps: [10] }), resume: false, restart: false }, t.deps(t.file, () => 'bad', { store }));
    expect(store.lost).toEqual(['lease', 'rollback']);
    expect(out.kind, out.message).toBe('rolled-back');
    expect((await readRollout(t.flagsFile)).percent).toBe(0);
    expect(await t.store.read()).toMatchObject({ phase: 'rolled-back', percent: 0, owner: null });
  });
});

describe('a breach at a first step equal to the current percentage', () => {
  it('rolls back below it (to 0%), not "back" to the same percentage', async () => {
    const t = await setup(10);
    const out = await runRamp({ plan: plan({ steps: [10, 20] }), resume: false, restart: false }, t.deps(t.file, () => 'bad'));
    expect(out.kind, out.message).toBe('rolled-back');
    expect(out.rolledBackTo).toBe(0);
    expect(out.message).toMatch(/^rolled back to 0% \(the last good step 10% is not below the breaching 10%\)/);
    expect((await readRollout(t.flagsFile)).percent).toBe(0);
  });
});
