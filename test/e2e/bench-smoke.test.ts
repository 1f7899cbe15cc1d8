/**
 * `npm run bench -- --quick --only fanout` (and `--only idle`) with tiny
 * numbers: the harness runs end to end (Redis, gateway processes, a peer,
 * publisher, client generator) and writes a valid result file. It measures nothing worth reading; the real
 * bench never runs inside `npm test`.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-bench-smoke-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/bench.mjs'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

describe('npm run bench (smoke)', () => {
  it('runs the fanout scenario with tiny numbers and writes Bifrost and peer figures as JSON', async () => {
    const r = await runBench(
      ['--quick', '--only', 'fanout', '--systems', 'bifrost,ws', '--reps', '1', '--subscribers', '20', '--topics', '2', '--rates', '200', '--step-seconds', '1', '--results-dir', dir],
      50_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const latest = join(dir, 'latest.json');
    expect(existsSync(latest)).toBe(true);
    expect(readdirSync(dir).filter((f) => /^\d{4}-.*\.json$/.test(f))).toHaveLength(1);
    const result = JSON.parse(readFileSync(latest, 'utf8'));
    expect(result.mode).toBe('quick');
    const runs = result.scenarios.fanout.runs as { system: string; steps: { received: number; worstMsBySecond: number[]; cpu: { serverUsPerMsg: number } }[] }[];
    for (const system of ['bifrost', 'ws']) {
      const run = runs.find((x) => x.system === system);
      expect(run, `${system} measured`).toBeDefined();
      expect(run!.steps.length).toBeGreaterThan(0);
      expect(run!.steps[0]!.received).toBeGreaterThan(0);
      expect(Number.isFinite(run!.steps[0]!.cpu.serverUsPerMsg)).toBe(true);
      // A 1-s step's events fall in its first second or two.
      const bySecond = run!.steps[0]!.worstMsBySecond;
      expect(bySecond.length).toBeGreaterThan(0);
      expect(Math.max(...bySecond)).toBeGreaterThan(0);
    }
    expect(result.scenarios.fanout.summary.serverCpuUsPerMsgAtReference.bifrost).toHaveLength(1);
    // The table is printed with the ratio to the peer.
    expect(r.stdout).toContain('Bifrost CPU/msg vs bare ws');
  }, 60_000);

  it('runs the idle scenario with tiny numbers: readings empty, after the first tenth and after all, per system', async () => {
    const out = join(dir, 'idle');
    const r = await runBench(['--quick', '--only', 'idle', '--reps', '1', '--idle-connections', '40', '--results-dir', out], 50_000);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'));
    const runs = result.scenarios.idle.runs as { system: string; connect: { opened: number }; warmConnections: number; rssBefore: number; rssWarm: number; rssAfter: number; rssPerConnection: number; rssPerAddedConnection: number }[];
    expect(runs.map((x) => x.system).sort()).toEqual(['bifrost', 'ws']);
    for (const run of runs) {
      // 4 opened first, then the other 36 in the measured batch.
      expect(run.warmConnections).toBe(4);
      expect(run.connect.opened).toBe(36);
      expect(run.rssPerConnection).toBeCloseTo((run.rssAfter - run.rssBefore) / 40, 6);
      expect(run.rssPerAddedConnection).toBeCloseTo((run.rssAfter - run.rssWarm) / 36, 6);
      expect(run.rssBefore).toBeGreaterThan(0);
    }
    expect(Number.isFinite(result.scenarios.idle.ratios.rssPerAddedConnectionBifrostVsWs)).toBe(true);
    expect(r.stdout).toContain('each added connection');
  }, 60_000);
});
