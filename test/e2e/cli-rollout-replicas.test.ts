/**
 * `bifrost rollout …` against several shim replicas (`--admin-url` repeated),
 * as in production where shims sit behind a load balancer: two real shims
 * reading one flags file in front of socket.io backends, real `ws` clients
 * through each, the CLI as a child process. A third shim reading another
 * flags file, and a port where nothing listens, stand for a replica that did
 * not follow and one that cannot be reached.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { findStep, loadCatalog } from '../../cli/migration/catalog.ts';
import { runChecks } from '../../cli/migration/check-runner.ts';
import { FileStateStore } from '../../cli/migration/state-store-file.ts';
import type { StackEndpoints } from '../../cli/migration/step-check.ts';
import { MetricsSampler, MetricsWindow } from '../../cli/rollout/metrics-window.ts';
import { FileFlagTarget } from '../../cli/rollout/flag-target-file.ts';
import { ShimAdminClient, ShimFleet, checkAdminUrl } from '../../cli/rollout/shim-admin-client.ts';
import { waitUntilApplied } from '../../cli/rollout/shim-apply.ts';
import { readShimRollout } from '../../cli/migration/checks/shim-rollout.ts';
import { writeRollout } from '../../proxy/flags-file.ts';
import { signRouteToken } from '../../proxy/route-token.ts';
import type { ShimHandle } from '../../proxy/shim.ts';
import { cleanEnv, json, killAll, runBifrost, waitFor } from '../support/cli-stack.ts';
import { startSocketIoBackend, type SocketIoBackend } from '../support/socket-io-backend.ts';
import { startTestShim } from '../support/test-shim.ts';
import { writeCollectionsFixture } from '../integration/migration-stack-peer.ts';

const adminToken = 'replicas-admin-token';
const routeSecret = 'replicas-route-secret';

let dir: string;
let flagsFile: string;
let backends: SocketIoBackend[] = [];
let a: ShimHandle;
let b: ShimHandle;
let other: ShimHandle;
let deadUrl: string;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-replicas-'));
  flagsFile = join(dir, 'flags.json');
  await writeRollout(flagsFile, { percent: 100, bucketBy: 'user' });
  backends = await Promise.all(['sync', 'bifrost-standin'].map((name) => startSocketIoBackend(name)));
  const setup = { dir, syncUrl: backends[0]!.url, bifrostUrls: [backends[1]!.url], tokenSecret: 'replicas-token-secret', adminToken };
  // Two replicas of one shim: same flags file, same route secret. Drain policy "keep": only the CLI's drain moves anyone.
  const opts = { godserverUrl: backends[0]!.url, routeSecret, flagsFile, drain: 'keep' as const };
  a = (await startTestShim(setup, { percent: 100 }, opts)).shim;
  b = (await startTestShim(setup, { percent: 100 }, opts)).shim;
  // A shim that reads another flags file.
  other = (await startTestShim(setup, { percent: 100 }, { godserverUrl: backends[0]!.url, routeSecret })).shim;
  // A port where no shim listens.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  deadUrl = `http://127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
}, 60_000);
afterEach(async () => {
  await killAll();
  for (const s of sockets.splice(0)) s.terminate();
  await writeRollout(flagsFile, { percent: 100, bucketBy: 'user' });
  for (const shim of [a, b]) {
    await waitFor('the replica to route 100% again', async () => ((await (await fetch(`${shim.adminUrl}/api/rollout`)).json()) as { percent: number }).percent === 100, 10_000, 50);
  }
});
afterAll(async () => {
  await Promise.all([a, b, other].map((s) => s?.close()));
  await Promise.all(backends.map((x) => x.close()));
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[]) => runBifrost(['rollout', ...args, '--flags-file', flagsFile], { cwd: dir, env: cleanEnv({ BIFROST_ADMIN_TOKEN: adminToken }) });
const both = () => ['--admin-url', a.adminUrl, '--admin-url', b.adminUrl];

/** A WebSocket through `shim` for one user (routed to Bifrost at 100%), once open. */
async function connectThrough(shim: ShimHandle, user: string): Promise<WebSocket> {
  const bf = signRouteToken(routeSecret, { userId: user, teamId: 't' }, 3600);
  const ws = new WebSocket(`${shim.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&bf_route=${bf}`);
  ws.on('error', () => undefined);
  sockets.push(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return ws;
}

interface ReplicaJson {
  url: string;
  state: string;
  percent: number | null;
  message?: string;
}

describe('rollout commands with several shim replicas', () => {
  it('status sums the replicas and lists each; rollback waits for every replica to apply 0% and drains both', async () => {
    const viaA = await Promise.all([1, 2, 3].map((i) => connectThrough(a, `ra-${i}`)));
    const viaB = await Promise.all([1, 2].map((i) => connectThrough(b, `rb-${i}`)));

    const status = await cli(['status', '--json', ...both()]);
    expect(status.code, status.stderr).toBe(0);
    const s = json<{
      shim: { connections: { bifrost: number; nodes: { id: string; connections: number }[] }; upgrades: { bifrost: { byOutcome: Record<string, number> } } };
      shimReplicas: { url: string; reachable: boolean; connections: { bifrost: number } }[];
    }>(status);
    expect(s.shim.connections.bifrost).toBe(5);
    // Both replicas route to the one Bifrost node: one row, their connections summed.
    expect(s.shim.connections.nodes.map((n) => [n.id, n.connections])).toEqual([['bifrost-standin', 5]]);
    expect(s.shim.upgrades.bifrost.byOutcome.ok).toBe(5);
    expect(s.shimReplicas.map((r) => [r.url, r.reachable, r.connections.bifrost])).toEqual([
      [a.adminUrl, true, 3],
      [b.adminUrl, true, 2],
    ]);
    const text = await cli(['status', ...both()]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('2 replicas, all answering');
    expect(text.stdout).toContain(a.adminUrl);
    expect(text.stdout).toContain(b.adminUrl);

    const rollback = await cli(['rollback', '--json', ...both()]);
    expect(rollback.code, rollback.stderr + rollback.stdout).toBe(0);
    const r = json<{ shimApplied: { state: string; replicas: ReplicaJson[] }; drain: { queued: number } }>(rollback);
    expect(r.shimApplied.state).toBe('applied');
    expect(r.shimApplied.replicas.map((x) => [x.url, x.state, x.percent])).toEqual([
      [a.adminUrl, 'applied', 0],
      [b.adminUrl, 'applied', 0],
    ]);
    // Each replica drained its own Bifrost connections: 3 + 2.
    expect(r.drain.queued).toBe(5);
    await waitFor('every Bifrost socket moved', () => [...viaA, ...viaB].every((w) => w.readyState === WebSocket.CLOSED), 15_000, 50);
  });

  it('set fails when a replica keeps another percentage, and names it', async () => {
    const res = await cli(['set', '30', '--json', '--apply-timeout', '1s', '--admin-url', a.adminUrl, '--admin-url', other.adminUrl]);
    expect(res.code, res.stderr).toBe(1);
    const out = json<{ percent: number; shimApplied: { state: string; message: string; replicas: ReplicaJson[] } }>(res);
    expect(out.percent).toBe(30);
    expect(out.shimApplied.state).toBe('not-applied');
    expect(out.shimApplied.replicas.map((x) => [x.url, x.state, x.percent])).toEqual([
      [a.adminUrl, 'applied', 30],
      [other.adminUrl, 'not-applied', 100],
    ]);
    expect(out.shimApplied.message).toMatch(new RegExp(`^1 of 2 shim replicas did not apply 30%: the shim at ${other.adminUrl} still routes 100% .*; applied by ${a.adminUrl}$`));
  });

  it('a replica that cannot be reached: set warns, status and rollback fail, naming it', async () => {
    const set = await cli(['set', '40', '--json', '--admin-url', a.adminUrl, '--admin-url', deadUrl]);
    expect(set.code, set.stderr).toBe(0);
    const out = json<{ shimApplied: { state: string; message: string; replicas: ReplicaJson[] } }>(set);
    expect(out.shimApplied.state).toBe('no-shim');
    expect(out.shimApplied.replicas.map((x) => [x.url, x.state])).toEqual([
      [a.adminUrl, 'applied'],
      [deadUrl, 'no-shim'],
    ]);
    expect(out.shimApplied.message).toContain(`could not confirm that every shim replica applies 40%: 1 of 2 did not answer (shim admin API unreachable at ${deadUrl}`);
    expect(set.stderr).toContain(`applied by ${a.adminUrl}`);

    const status = await cli(['status', '--admin-url', a.adminUrl, '--admin-url', deadUrl]);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain('1 not answering');
    expect(status.stdout).toContain(deadUrl);

    const rollback = await cli(['rollback', '--json', '--admin-url', a.adminUrl, '--admin-url', deadUrl]);
    expect(rollback.code).toBe(1);
    const r = json<{ percent: number; drain: { error: string } }>(rollback);
    expect(r.percent).toBe(0);
    expect(r.drain.error).toMatch(/^not asked: could not confirm that every shim replica applies 0%/);
  });

  it("the ramp's metrics add up every replica's upgrades", async () => {
    const [ca, cb] = [new ShimAdminClient(a.adminUrl, adminToken), new ShimAdminClient(b.adminUrl, adminToken)];
    const fleet = new MetricsSampler({ admin: [ca, cb], gatewayUrls: [] });
    const onlyA = new MetricsSampler({ admin: ca, gatewayUrls: [] });
    const [wFleet, wA] = [new MetricsWindow(), new MetricsWindow()];
    wFleet.add(await fleet.scrape());
    wA.add(await onlyA.scrape());
    await Promise.all([connectThrough(a, 'm-1'), connectThrough(b, 'm-2'), connectThrough(b, 'm-3')]);
    const [sf, sa] = [await fleet.scrape(), await onlyA.scrape()];
    expect([...sf.sources.keys()].sort()).toEqual([`shim@${a.adminUrl}`, `shim@${b.adminUrl}`].sort());
    wFleet.add(sf);
    wA.add(sa);
    expect(wFleet.summary().upgrades.bifrost.total).toBe(3);
    expect(wA.summary().upgrades.bifrost.total).toBe(1);
  });

  it("migrate check's canary sums every replica's upgrades and restarts its streak when other replicas are read", async () => {
    const fixture = join(dir, 'canary');
    await writeCollectionsFixture(fixture, backends[0]!.url, '{ forSeconds: 0, sampleSeconds: 0.2, minRequests: 3 }');
    const sq = (await loadCatalog({ migrationsDir: join(fixture, 'migrations'), playbooksDir: join(fixture, 'playbooks') })).squads[0]!;
    const store = new FileStateStore(join(fixture, 'state.json'));
    const stackOf = (adminUrls: string[]): StackEndpoints => ({
      privateUrl: 'http://127.0.0.1:9',
      gatewayUrl: 'http://127.0.0.1:9',
      syncUrl: backends[0]!.url,
      adminUrl: adminUrls[0]!,
      adminUrls,
      serviceToken: 'unused',
      tokenSecret: 'unused',
    });
    const canary = async (adminUrls: string[]) => (await runChecks({ sq, store, stack: stackOf(adminUrls), only: findStep(sq, 'canary'), reporter: { begin: () => () => {}, end: () => {} } }))[0]!;

    const first = await canary([a.adminUrl, b.adminUrl]);
    expect(first.ok).toBe(false);
    expect(first.summary).toMatch(/^only 0 Bifrost upgrades in the \d+s since \S+, need 3 to judge/);
    expect(first.output[0]).toBe('rollout: 100% on Bifrost (the lowest of 2 shim replicas) (need ≥ 5%)');
    // 2 upgrades through each replica: 4 in all, enough only when both are counted.
    await Promise.all([connectThrough(a, 'c-1'), connectThrough(a, 'c-2'), connectThrough(b, 'c-3'), connectThrough(b, 'c-4')]);
    const second = await canary([a.adminUrl, b.adminUrl]);
    expect(second.summary).toMatch(/^100% on Bifrost, failure rate 0\.00% over 4 upgrades, healthy for \d+s$/);
    expect(second.ok).toBe(true);
    // One replica only: its counters cannot continue the two replicas' mark.
    const third = await canary([a.adminUrl]);
    expect(third.output).toContain(`the last run read the shim replicas ${[a.adminUrl, b.adminUrl].sort().join(', ')}, this one one shim: the period since the last run cannot be judged, the streak restarts`);
  });
});

describe('dns+http:// admin URLs: every address of a name is a replica, looked up at each use', () => {
  let c: ShimHandle;
  let d: ShimHandle;
  let port: number;
  beforeAll(async () => {
    const setup = { dir, syncUrl: backends[0]!.url, bifrostUrls: [backends[1]!.url], tokenSecret: 'replicas-token-secret', adminToken };
    const opts = { godserverUrl: backends[0]!.url, routeSecret, flagsFile, drain: 'keep' as const };
    // Two pods behind one name: the same admin port on two loopback addresses.
    c = (await startTestShim(setup, { percent: 100 }, { ...opts, adminHost: '127.0.0.1' })).shim;
    port = Number(new URL(c.adminUrl).port);
    d = (await startTestShim(setup, { percent: 100 }, { ...opts, adminHost: '127.0.0.2', adminPort: port })).shim;
  });
  afterAll(async () => {
    await Promise.all([c, d].map((x) => x?.close()));
  });

  it('confirms a write on every address, follows the name as it changes, and says when it cannot be looked up', async () => {
    let answer: string[] | Error = ['127.0.0.2', '127.0.0.1'];
    const fleet = new ShimFleet([`dns+http://shims.test:${port}`], adminToken, async (host) => {
      expect(host).toBe('shims.test');
      if (answer instanceof Error) throw answer;
      return answer;
    });
    const flag = new FileFlagTarget(flagsFile);
    await writeRollout(flagsFile, { percent: 60, bucketBy: 'user' });
    const applied = await waitUntilApplied(fleet, flag, { percent: 60 }, { timeoutMs: 10_000 });
    expect(applied.state).toBe('applied');
    expect(applied.replicas?.map((r) => [r.url, r.state, r.percent])).toEqual([
      [`http://127.0.0.1:${port}`, 'applied', 60],
      [`http://127.0.0.2:${port}`, 'applied', 60],
    ]);

    // Upgrades through both pods count; once a pod leaves the name, only the other is scraped.
    const sampler = new MetricsSampler({ admin: fleet, gatewayUrls: [] });
    await writeRollout(flagsFile, { percent: 100, bucketBy: 'user' });
    expect((await waitUntilApplied(fleet, flag, { percent: 100 }, { timeoutMs: 10_000 })).state).toBe('applied');
    const w = new MetricsWindow();
    w.add(await sampler.scrape());
    await Promise.all([connectThrough(c, 'dns-1'), connectThrough(d, 'dns-2')]);
    w.add(await sampler.scrape());
    expect(w.summary().upgrades.bifrost.total).toBe(2);
    answer = ['127.0.0.1'];
    // The remaining pod keeps its source name, so its counter deltas continue.
    expect([...(await sampler.scrape()).sources.keys()]).toEqual([`shim@http://127.0.0.1:${port}`]);

    answer = Object.assign(new Error('queryA ESERVFAIL shims.test'), { code: 'ESERVFAIL' });
    const lost = await waitUntilApplied(fleet, flag, { percent: 100 }, { timeoutMs: 500 });
    expect(lost.state).toBe('no-shim');
    expect(lost.state === 'no-shim' && lost.message).toBe(
      `could not confirm that the shim applies 100%: could not look up the shim replicas of dns+http://shims.test:${port}: queryA ESERVFAIL shims.test (pass --admin-url, or check the shim runs)`,
    );
  });

  it("migrate check reads every address of the name; the command line takes dns+http:// names with a port", async () => {
    const r = await readShimRollout(
      { privateUrl: 'http://127.0.0.1:9', gatewayUrl: 'http://127.0.0.1:9', syncUrl: backends[0]!.url, adminUrl: `dns+http://shims.test:${port}`, serviceToken: 'x', tokenSecret: 'x', resolveHost: async () => ['127.0.0.1', '127.0.0.2'] },
      3000,
    );
    expect(typeof r === 'string' ? r : r.replicas?.map((x) => [x.url, x.percent])).toEqual([
      [`http://127.0.0.1:${port}`, 100],
      [`http://127.0.0.2:${port}`, 100],
    ]);
    expect(() => checkAdminUrl('--admin-url', 'dns+http://shims.test')).toThrow('--admin-url "dns+http://shims.test" needs an explicit port (the shims\' admin port, e.g. :9090)');
    expect(() => checkAdminUrl('--admin-url', 'dns+https://shims.test:9090')).toThrow(/use dns\+http:\/\//);
    // The real command: an address as the name needs no DNS server.
    const status = await cli(['status', '--json', '--admin-url', `dns+http://127.0.0.2:${port}`]);
    expect(status.code, status.stderr).toBe(0);
    expect(json<{ shim: { url: string } }>(status).shim.url).toBe(`http://127.0.0.2:${port}`);
    const bad = await cli(['status', '--admin-url', 'dns+http://shims.test']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('needs an explicit port');
  });
});
