/**
 * `bifrost rollout …` as an operator runs it, against `bifrost up` on random
 * ports, with the ramp state in the file store (`.bifrost/ramp.json`).
 */
import { mkdir, mkdtemp, rm, utimes } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { processIdentity, type ProcessIdentity } from '../../cli/pid.ts';
import { DEV_TOKEN_SECRET, signAccessToken } from '../../gateway/token.ts';
import { connectSocketIo4Client } from '../support/legacy-clients.ts';
import { adminRollout, cleanEnv, json, killAll, readJsonFile, runBifrost, spawnBifrost, startStack, waitFor, type Stack } from '../support/cli-stack.ts';

const SERVICE_TOKEN = 'bifrost-dev-service-token';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('rollout');
}, 180_000);
afterEach(async () => {
  await killAll();
});
afterAll(async () => {
  await killAll();
  await stack?.stop();
});

const cli = (args: string[], timeoutMs?: number) => runBifrost(['rollout', ...args, '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env: stack.env, timeoutMs });

interface RampFile {
  phase: string;
  stepIndex: number;
  stepElapsedMs: number;
  percent: number;
  paused: boolean;
  owner: { pid: number; process?: ProcessIdentity } | null;
}
const rampFile = () => readJsonFile<RampFile>(join(stack.dir, '.bifrost/ramp.json'));

/** From 0 %, a `rollout ramp --steps 20,40 --interval 5m` process, once it runs (and owns) its first step. */
async function rampRunningAt20() {
  expect((await cli(['set', '0'])).code).toBe(0);
  const ramp = spawnBifrost(['rollout', 'ramp', '--steps', '20,40', '--interval', '5m', '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env: stack.env });
  await waitFor('the ramp to run at 20%', async () => {
    const s = await rampFile();
    return s && s.phase === 'running' && s.percent === 20 && s.owner?.pid === ramp.child.pid ? s : undefined;
  }, 60_000, 50);
  return ramp;
}

/** Makes Bifrost fail requests for real: a service whose upstream is down, called through /v1/proxy. */
async function startFailingTraffic(): Promise<() => Promise<number>> {
  const privateUrl = stack.info.nodes[0]!.privateUrl;
  const reg = await fetch(`${privateUrl}/v1/services/broken-feature`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${SERVICE_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upstream: 'http://127.0.0.1:9', prefixes: ['/broken-feature'] }),
  });
  expect(reg.status).toBe(200);
  const token = await signAccessToken(DEV_TOKEN_SECRET, { userId: 'u-load', teamId: 't-load' });
  let stop = false;
  let sent = 0;
  const loop = (async () => {
    while (!stop) {
      const res = await fetch(`${privateUrl}/v1/proxy`, {
        method: 'POST',
        headers: { authorization: `Bearer ${SERVICE_TOKEN}`, 'x-access-token': token, 'content-type': 'application/json' },
        body: JSON.stringify({ service: 'broken-feature', method: 'GET', path: '/broken-feature/items' }),
      }).catch(() => undefined);
      if (res) {
        await res.text();
        sent += 1;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    await fetch(`${privateUrl}/v1/services/broken-feature`, { method: 'DELETE', headers: { authorization: `Bearer ${SERVICE_TOKEN}` } });
    return sent;
  };
}

describe('bifrost rollout set / status', () => {
  it('sets the percentage in the flags file, the shim applies it within 2 s, and status shows it', async () => {
    const set = await cli(['set', '25', '--bucket-by', 'team', '--json']);
    expect(set.code, set.stderr).toBe(0);
    expect(json(set)).toMatchObject({ percent: 25, bucketBy: 'team', target: 'file' });
    const setAt = Date.now();
    const applied = await waitFor('the shim to apply 25%', async () => {
      const r = await adminRollout(stack);
      return r.percent === 25 && r.bucketBy === 'team' ? r : undefined;
    }, 10_000, 50);
    expect(applied.percent).toBe(25);
    expect(Date.now() - setAt).toBeLessThan(2000);

    const status = await cli(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const s = json<{ percent: number; bucketBy: string; shim: { reachable: boolean; percent: number; connections: { nodes: { id: string; url: string }[] }; decisions: { sync: number; bifrost: number } }; ramp: unknown }>(status);
    expect(s.percent).toBe(25);
    expect(s.bucketBy).toBe('team');
    expect(s.shim.reachable).toBe(true);
    expect(s.shim.percent).toBe(25);
    expect(s.shim.connections.nodes.map((n) => n.url)).toEqual([stack.info.nodes[0]!.publicUrl]);
    expect(typeof s.shim.decisions.bifrost).toBe('number');

    const table = await cli(['status']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/25% on Bifrost, bucket by team/);
    expect(table.stdout).toContain('gw-1');
    expect(table.stdout).toMatch(/live connections/);
    expect(table.stdout).not.toMatch(/\x1b\[/); // NO_COLOR and not a TTY

    // Raising keeps the salt (only adds users) and the bucket-by unless told otherwise.
    const flagsBefore = await readJsonFile<{ flags: Record<string, { salt: string }> }>(join(stack.dir, 'flags.json'));
    const raise = await cli(['set', '30']);
    expect(raise.code, raise.stderr).toBe(0);
    expect(raise.stdout).toMatch(/30% of teams on Bifrost/);
    const flagsAfter = await readJsonFile<{ flags: Record<string, { salt: string }> }>(join(stack.dir, 'flags.json'));
    expect(flagsAfter!.flags['bifrost-sync-migration']!.salt).toBe(flagsBefore!.flags['bifrost-sync-migration']!.salt);
  }, 300_000);

  it('shows decisions and upgrade outcomes per backend over the last minutes (shim `recent`, status table and --json)', async () => {
    interface Recent {
      windowSeconds: number;
      decisions: { sync: number; bifrost: number };
      upgrades: { sync: { ok: number; failed: number }; bifrost: { ok: number; failed: number } };
    }
    const recent = async () => ((await (await fetch(`${stack.info.adminUrl}/api/rollout`)).json()) as { recent: Recent }).recent;
    expect((await cli(['set', '100', '--bucket-by', 'user'])).code).toBe(0);
    await waitFor('the shim to apply 100%', async () => (await adminRollout(stack)).percent === 100, 10_000, 50);
    const before = await recent();
    expect(before.windowSeconds).toBe(300);

    // A real client start-up through the shim: Godserver init (a decision), then the socket (a decision and an upgrade), on Bifrost.
    const token = await signAccessToken(DEV_TOKEN_SECRET, { userId: 'u-recent', teamId: 't-recent' });
    const init = await fetch(`${stack.info.shimUrl}/godserver/init`, { headers: { 'x-access-token': token } });
    expect(init.headers.get('x-bifrost-route')).toBe('bifrost');
    const { syncserver_url } = (await init.json()) as { syncserver_url: string };
    const client = await connectSocketIo4Client({ url: syncserver_url, token });
    await client.close();
    // A socket upgrade Sync refuses (unknown engine.io session, no route token: routed to Sync): a failed Sync upgrade.
    const shim = new URL(stack.info.shimUrl);
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(Number(shim.port), shim.hostname, () => {
        s.write(`GET /socket.io/?EIO=4&transport=websocket&sid=no-such-session HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
      });
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('close', () => resolve(data));
      s.on('error', reject);
    });
    expect(answer.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 4\d\d /);

    const after = await waitFor('the recent counts to move', async () => {
      const r = await recent();
      return r.upgrades.sync.failed > before.upgrades.sync.failed && r.upgrades.bifrost.ok > before.upgrades.bifrost.ok ? r : undefined;
    }, 10_000, 50);
    expect(after.decisions.bifrost - before.decisions.bifrost).toBeGreaterThanOrEqual(2);
    expect(after.decisions.sync - before.decisions.sync).toBeGreaterThanOrEqual(1);
    expect(after.upgrades.bifrost.ok - before.upgrades.bifrost.ok).toBe(1);
    expect(after.upgrades.sync.failed - before.upgrades.sync.failed).toBe(1);

    const status = await cli(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const s = json<{ shim: { recent: Recent; decisions: { sync: number; bifrost: number }; syncUrl: string } }>(status);
    expect(s.shim.recent.windowSeconds).toBe(300);
    expect(s.shim.recent.decisions.bifrost).toBeGreaterThanOrEqual(after.decisions.bifrost);
    expect(s.shim.recent.upgrades.bifrost.ok).toBeGreaterThanOrEqual(after.upgrades.bifrost.ok);
    expect(s.shim.recent.upgrades.sync.failed).toBeGreaterThanOrEqual(after.upgrades.sync.failed);
    expect(s.shim.decisions.bifrost).toBeGreaterThanOrEqual(s.shim.recent.decisions.bifrost); // totals unchanged in shape
    expect(s.shim.syncUrl).toBe(stack.info.syncUrl);

    const table = await cli(['status']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/last 5 min.*decisions.*upgrades ok.*upgrade failures/);
    expect(table.stdout).toMatch(new RegExp(`bifrost\\s*│\\s*${s.shim.recent.decisions.bifrost}\\s*│\\s*${s.shim.recent.upgrades.bifrost.ok}\\s*│`));
    expect((await cli(['set', '0'])).code).toBe(0);
  }, 300_000);

  it('refuses bad usage with exit 2 and one clear line', async () => {
    const tooHigh = await cli(['set', '150']);
    expect(tooHigh.code).toBe(2);
    expect(tooHigh.stderr.trim().split('\n')).toHaveLength(1);
    expect(tooHigh.stderr).toMatch(/percent must be from 0 to 100, got "150"/);
    const badBucket = await cli(['set', '5', '--bucket-by', 'squad']);
    expect(badBucket.code).toBe(2);
    expect(badBucket.stderr).toMatch(/--bucket-by must be "user" or "team"/);
    const badSteps = await cli(['ramp', '--steps', '5,1', '--interval', '1s']);
    expect(badSteps.code).toBe(2);
    expect(badSteps.stderr).toMatch(/--steps must increase/);
    const badInterval = await cli(['ramp', '--steps', '5', '--interval', 'soon']);
    expect(badInterval.code).toBe(2);
    expect(badInterval.stderr).toMatch(/--interval must be a duration/);
    const help = await cli(['ramp', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:\n\s+\$ bifrost rollout ramp --steps 1,5,25,50,100 --interval 10m/);
  }, 300_000);

  it('refuses to create a missing flags file (exit 2, says where it looked), and warns when no shim can confirm the change', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'bifrost-rollout-empty-'));
    try {
      const run = (args: string[]) => runBifrost(['rollout', ...args, '--admin-url', 'http://127.0.0.1:9'], { cwd: empty, env: cleanEnv() });
      const refused = await run(['set', '5']);
      expect(refused.code).toBe(2);
      expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^bifrost: no flags file at ${join(empty, '.bifrost/flags.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} .*pass --create-flags-file to create it$`))]);
      expect(refused.stdout).not.toMatch(/✓/);
      expect(await readJsonFile(join(empty, '.bifrost/flags.json'))).toBeUndefined();

      const created = await run(['set', '5', '--create-flags-file']);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toMatch(/^! rollout set to 5% of users on Bifrost/);
      expect(created.stdout).toMatch(/warning: could not confirm that the shim applies 5%: shim admin API unreachable at http:\/\/127\.0\.0\.1:9/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  }, 300_000);

  it('exits 1 when the shim answers but does not apply what was written, and names the file it reads', async () => {
    const elsewhere = join(stack.dir, 'elsewhere', 'flags.json');
    const r = await cli(['set', '40', '--flags-file', elsewhere, '--create-flags-file', '--apply-timeout', '1s']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/✗ rollout set to 40%/);
    expect(r.stdout).toContain(`the shim reads ${join(stack.dir, 'flags.json')}, this command wrote ${elsewhere}: pass --flags-file ${join(stack.dir, 'flags.json')}`);
    expect((await adminRollout(stack)).percent).not.toBe(40);
  }, 300_000);

  it('exits 1 with one line, not a stack trace, on a runtime failure', async () => {
    const r = await cli(['pause', '--ramp-file', '/dev/null/ramp.json']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^bifrost: .*mkdir '\/dev\/null'.* \(BIFROST_DEBUG=1 shows the stack trace\)$/)]);
  }, 300_000);

  it('exits 1 from status when the shim admin API is unreachable', async () => {
    const r = await runBifrost(['rollout', 'status', '--admin-url', 'http://127.0.0.1:9'], { cwd: stack.dir, env: stack.env });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/shim admin API unreachable/);
  }, 300_000);
});

describe('bifrost rollout ramp', () => {
  it('rolls back to the last good step and exits 1 when Bifrost fails requests', async () => {
    expect((await cli(['set', '10', '--bucket-by', 'user'])).code).toBe(0);
    const stopTraffic = await startFailingTraffic();
    try {
      const ramp = await cli(['ramp', '--steps', '20,40', '--interval', '6s', '--min-requests', '3', '--max-error-rate', '0.01', '--json'], 180_000);
      expect(ramp.code, ramp.stderr).toBe(1);
      const out = json<{ outcome: string; rolledBackTo: number; percent: number; breaches: { guard: string; value: number; limit: number; baseline: number | null; text: string }[]; applied: number[]; drain: { queued: number } | { error: string } }>(ramp);
      expect(out.outcome).toBe('rolled-back');
      expect(out.rolledBackTo).toBe(10);
      expect(out.percent).toBe(10);
      expect(out.applied).toEqual([20]);
      const b = out.breaches.find((x) => x.guard === 'request-errors');
      expect(b, JSON.stringify(out.breaches)).toBeDefined();
      expect(b!.value).toBeGreaterThan(0.01);
      expect(b!.text).toMatch(/request error rate \d+(\.\d+)?% \(\d+ of \d+ requests/);
      expect(out.drain).toHaveProperty('queued');
      expect(ramp.stderr).toMatch(/guard breached at step 1\/2 \(20%\)/);
      // Sync's metrics found through the shim's admin API (its syncUrl); Sync carried no requests, so the absolute limit alone applied.
      expect(ramp.stderr).toContain(`Sync baseline: ${stack.info.syncUrl}/__bifrost/metrics`);
      expect(b!.baseline).toBeNull();
      expect(b!.text).toMatch(/\(no Sync baseline: Sync carried \d+ requests \(fewer than 3\)\)/);
    } finally {
      expect(await stopTraffic()).toBeGreaterThan(0);
    }
    const applied = await waitFor('the shim back at 10%', async () => ((await adminRollout(stack)).percent === 10 ? true : undefined), 10_000);
    expect(applied).toBe(true);
    const state = await rampFile();
    expect(state).toMatchObject({ phase: 'rolled-back', percent: 10, owner: null });

    const status = await cli(['status']);
    expect(status.stdout).toMatch(/Ramp\s+rolled back: rolled back to 10% \(last good step\) after request-errors breached/);
  }, 300_000);

  it('honours --rollback-to and prints the breach in text mode', async () => {
    expect((await cli(['set', '15'])).code).toBe(0);
    const stopTraffic = await startFailingTraffic();
    try {
      const ramp = await cli(['ramp', '--steps', '30', '--interval', '6s', '--min-requests', '3', '--rollback-to', '0', '--sync-metrics-url', 'http://127.0.0.1:9/__bifrost/metrics'], 180_000);
      expect(ramp.code, ramp.stderr).toBe(1);
      expect(ramp.stdout).toMatch(/rolled back to 0% \(--rollback-to\) after request-errors breached at step 1\/1 \(30%\)/);
      expect(ramp.stdout).toMatch(/breached request error rate/);
      // An unreachable Sync: the baseline is skipped, and the output says so.
      expect(ramp.stdout).toMatch(/Sync baseline skipped: Sync metrics unreachable at http:\/\/127\.0\.0\.1:9\/__bifrost\/metrics/);
      expect(ramp.stdout).toMatch(/breached request error rate .* \(no Sync baseline: Sync metrics unreachable at http:\/\/127\.0\.0\.1:9\/__bifrost\/metrics/);
    } finally {
      await stopTraffic();
    }
    expect(await waitFor('the shim at 0%', async () => (await adminRollout(stack)).percent === 0, 10_000)).toBe(true);
  }, 300_000);

  it('refuses (exit 2) a ramp whose first step is below the current percentage', async () => {
    expect((await cli(['set', '25'])).code).toBe(0);
    const r = await cli(['ramp', '--steps', '1,5,25,50,100', '--interval', '1s']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^bifrost: the rollout is at 25% and the first step is 1%: a ramp only moves forward — give steps from 25% up \(e\.g\. --steps 50,100\)/);
    expect((await adminRollout(stack)).percent).toBe(25);
  }, 300_000);

  it('completes a healthy ramp, continues a killed one from its persisted step, and exits 0', async () => {
    expect((await cli(['set', '0'])).code).toBe(0);
    const args = ['ramp', '--steps', '5,10,15', '--interval', '4s', '--json'];
    const first = spawnBifrost(['rollout', ...args, '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env: stack.env });
    const atStep2 = await waitFor('the ramp to reach step 2', async () => {
      const s = await rampFile();
      return s && s.phase === 'running' && s.stepIndex >= 1 && s.percent === 10 ? s : undefined;
    }, 60_000, 50);
    expect(atStep2.owner?.pid).toBe(first.child.pid);
    // The lease records the process's boot and start time, so a reused pid cannot keep it alive.
    expect(atStep2.owner?.process).toEqual(processIdentity(first.child.pid!));
    first.child.kill('SIGKILL');
    await first.exited;
    const left = await rampFile();
    expect(left).toMatchObject({ phase: 'running', stepIndex: 1 });

    const again = await cli(args, 180_000);
    expect(again.code, again.stderr).toBe(0);
    const out = json<{ outcome: string; resumed: boolean; startedAtStep: number; applied: number[]; percent: number }>(again);
    expect(out.outcome).toBe('completed');
    expect(out.resumed).toBe(true);
    expect(out.startedAtStep).toBe(1);
    expect(out.applied).toEqual([10, 15]); // 5% was not applied again
    expect(out.percent).toBe(15);
    expect(again.stderr).toMatch(/resuming the ramp 5% → 10% → 15% \(4s each\) at step 2\/3 \(10%\)/);
    expect(await rampFile()).toMatchObject({ phase: 'completed', percent: 15, owner: null });
    await waitFor('the shim at 15%', async () => (await adminRollout(stack)).percent === 15, 10_000);

    // Nothing left to resume now.
    const nothing = await cli(['ramp', '--resume']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/no unfinished ramp to resume/);
  }, 300_000);

  it('refuses a second ramp, pauses and resumes from another terminal, and rollback ends it and drains', async () => {
    const ramp = await rampRunningAt20();

    const second = await cli(['ramp', '--steps', '20,40', '--interval', '5m']);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`another ramp is running \\(pid ${ramp.child.pid} on `));
    const different = await cli(['ramp', '--steps', '50', '--interval', '1s', '--restart']);
    expect(different.code).toBe(2);
    expect(different.stderr).toMatch(/another ramp is running/);

    const manual = await cli(['set', '70']);
    expect(manual.code).toBe(2);
    expect(manual.stderr).toMatch(/a ramp is running/);

    const pause = await cli(['pause', '--json']);
    expect(pause.code, pause.stderr).toBe(0);
    expect(json(pause)).toMatchObject({ paused: true, changed: true });
    await waitFor('the ramp to report the pause', () => /paused by /.test(ramp.stdout()), 15_000);
    const frozen = (await rampFile())!.stepElapsedMs;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await rampFile())!.stepElapsedMs).toBe(frozen);
    const status = await cli(['status', '--json']);
    expect(json<{ ramp: { paused: boolean; ownerAlive: boolean } }>(status).ramp).toMatchObject({ paused: true, ownerAlive: true });

    const resume = await cli(['resume', '--json']);
    expect(resume.code, resume.stderr).toBe(0);
    expect(json(resume)).toMatchObject({ paused: false, changed: true });
    await waitFor('the clock to run again', async () => (await rampFile())!.stepElapsedMs > frozen, 15_000);

    const rollback = await cli(['rollback', '--json']);
    expect(rollback.code, rollback.stderr).toBe(0);
    const rb = json<{ percent: number; drain: { queued: number; rate: number }; rampEnded: { phase: string } }>(rollback);
    expect(rb.percent).toBe(0);
    expect(rb.rampEnded.phase).toBe('rolled-back');
    expect(rb.drain.queued).toBeGreaterThanOrEqual(0);
    expect(rb.drain.rate).toBeGreaterThan(0);

    const ended = await ramp.exited;
    expect(ended.code).toBe(1);
    expect(ramp.stdout()).toMatch(/the ramp was ended from elsewhere/);
    await waitFor('the shim at 0%', async () => (await adminRollout(stack)).percent === 0, 10_000);
    expect(await rampFile()).toMatchObject({ phase: 'rolled-back', percent: 0 });

    const pauseNothing = await cli(['pause']);
    expect(pauseNothing.code).toBe(1);
    expect(pauseNothing.stderr).toMatch(/no ramp in progress to pause/);
  }, 300_000);

  it('rollback writes 0% before it ends the ramp (a flag it cannot write yet leaves the ramp "rolling back", not "0%")', async () => {
    const ramp = await rampRunningAt20();
    // Another writer holds the flags file's lock: writes fail until it lets go.
    const lock = join(stack.dir, 'flags.json.lock');
    await mkdir(lock);
    const fresh = setInterval(() => void utimes(lock, new Date(), new Date()).catch(() => {}), 1000); // never stale
    let released = false;
    try {
      const rollback = spawnBifrost(['rollout', 'rollback', '--json', '--admin-url', stack.info.adminUrl], { cwd: stack.dir, env: stack.env });
      await waitFor('the ramp to be marked rolling back', async () => (await rampFile())?.phase === 'rolling-back', 20_000, 50);
      const seen = new Set<string>();
      const watch = setInterval(() => void rampFile().then((f) => f && seen.add(f.phase)), 100);
      try {
        await waitFor('the rollback to retry the locked write', () => /retry: writing 0% to flags file .* failed \(.*could not lock/.test(rollback.stderr()), 30_000, 100);
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        clearInterval(watch);
      }
      expect([...seen]).toEqual(['rolling-back']); // never "rolled back to 0%" while the flag is still 20%
      expect((await adminRollout(stack)).percent).toBe(20);
      clearInterval(fresh);
      await rm(lock, { recursive: true, force: true });
      released = true;
      const done = await rollback.exited;
      expect(done.code, rollback.stderr()).toBe(0);
      expect(json({ code: done.code, stdout: rollback.stdout(), stderr: '' })).toMatchObject({ percent: 0, rampEnded: { phase: 'rolled-back' }, shimApplied: { state: 'applied', shimPercent: 0 } });
    } finally {
      clearInterval(fresh);
      if (!released) await rm(lock, { recursive: true, force: true });
    }
    expect((await ramp.exited).code).toBe(1);
    expect(await rampFile()).toMatchObject({ phase: 'rolled-back', percent: 0 });
    expect((await adminRollout(stack)).percent).toBe(0);
  }, 300_000);
});
