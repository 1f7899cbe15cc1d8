/**
 * The automated step checks against live peers that follow the contract
 * (see migration-stack-peer.ts): each check passes when the stack behaves and
 * fails, saying why, when the behaviour it verifies is missing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { findStep, loadCatalog, type SquadMigration } from '../../cli/migration/catalog.ts';
import { runChecks, type CheckRunResult } from '../../cli/migration/check-runner.ts';
import { withProbeRecord } from '../../cli/migration/checks/probe-record.ts';
import { readFile, writeFile } from 'node:fs/promises';
import { FileStateStore } from '../../cli/migration/state-store-file.ts';
import { completeStep, reopenStep } from '../../cli/migration/step-transitions.ts';
import type { StackEndpoints } from '../../cli/migration/step-check.ts';
import { PEER_SECRET, PEER_SERVICE_TOKEN, startStackPeer, writeCollectionsFixture, type StackPeer } from './migration-stack-peer.ts';

let peer: StackPeer;
let dir: string;
let sq: SquadMigration;
let store: FileStateStore;
let stack: StackEndpoints;

beforeAll(async () => {
  peer = await startStackPeer();
  stack = { privateUrl: peer.privateUrl, gatewayUrl: peer.gatewayUrl, syncUrl: peer.syncUrl, adminUrl: peer.adminUrl, serviceToken: PEER_SERVICE_TOKEN, tokenSecret: PEER_SECRET };
});
afterAll(async () => {
  await peer.close();
});

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bifrost-migration-checks-'));
  await writeCollectionsFixture(dir, peer.syncUrl);
  const catalog = await loadCatalog({ migrationsDir: path.join(dir, 'migrations'), playbooksDir: path.join(dir, 'playbooks') });
  sq = catalog.squads[0]!;
  store = new FileStateStore(path.join(dir, 'state.json'));
  Object.assign(peer.knobs, { bridge: true, subscribeHeader: true, proxyTamper: false, percent: 0, okPerScrape: 0, errorsPerScrape: 0, rejectedPerScrape: 0, abortedPerScrape: 0, version: null });
  peer.services.clear();
  peer.services.set('sync', { name: 'sync', upstream: peer.syncUrl, prefixes: ['/'] });
  peer.records.clear();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const silent = { begin: () => () => {}, end: () => {} };
async function check(step: string): Promise<CheckRunResult> {
  const [r] = await runChecks({ sq, store, stack, only: findStep(sq, step), reporter: silent });
  return r!;
}
const registerCollections = () => peer.services.set('collections', { name: 'collections', upstream: peer.syncUrl, prefixes: ['/collection'] });
/** Rewrites the fixture's manifest and reloads the squad. */
async function editManifest(edit: (text: string) => string): Promise<void> {
  const file = path.join(dir, 'migrations/collections.yaml');
  await writeFile(file, edit(await readFile(file, 'utf8')));
  sq = (await loadCatalog({ migrationsDir: path.join(dir, 'migrations'), playbooksDir: path.join(dir, 'playbooks') })).squads[0]!;
}
const scrape = () => fetch(`${peer.adminUrl}/metrics`).then((r) => r.text());

describe('register-service', () => {
  it('fails with the command to run while the service is missing, passes once registered as the manifest says', async () => {
    const missing = await check('register-service');
    expect(missing.ok).toBe(false);
    expect(missing.summary).toBe('collections is not registered');
    expect(missing.output.join('\n')).toContain(`curl -X PUT ${peer.privateUrl}/v1/services/collections`);
    peer.services.set('collections', { name: 'collections', upstream: peer.syncUrl, prefixes: ['/collections'] });
    const wrong = await check('register-service');
    expect(wrong.summary).toMatch(/prefixes are \[\/collections\], manifest says \[\/collection\]/);
    registerCollections();
    const ok = await check('register-service');
    expect(ok).toMatchObject({ ok: true, status: 'pending' });
    expect(ok.message).toMatch(/stays pending until inventory is done/);
  });
});

describe('dual-publish', () => {
  it('sees an update made through Sync arrive on a Bifrost socket, and cleans up the probe record', async () => {
    const r = await check('dual-publish');
    expect(r.summary).toMatch(/^Sync's update reached Bifrost as "collection" on collection:[0-9a-f-]+ in \d+ ms$/);
    expect(r.ok).toBe(true);
    expect(r.output[0]).toMatch(/^probe record /);
    expect(r.output.join('\n')).toMatch(/read GET \/collection\/\S+ via service sync: response 200/);
    expect(peer.records.size).toBe(0);
    expect(peer.published.some((p) => p.event === 'collection' && (p.data as { verb?: string }).verb === 'updated')).toBe(true);
  });

  it('reads through the squad\'s own service once it is registered', async () => {
    registerCollections();
    const r = await check('dual-publish');
    expect(r.ok).toBe(true);
    expect(r.output.join('\n')).toContain('via service collections');
  });

  it('fails within the event timeout when Sync does not publish to Bifrost', async () => {
    peer.knobs.bridge = false;
    const started = Date.now();
    const r = await check('dual-publish');
    expect(r.ok).toBe(false);
    expect(r.summary).toMatch(/no "collection" event on collection:\S+ within 1500 ms after the update through Sync: is the dual-publish bridge on\?/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(r.output).toContain('events seen: none');
  });

  it('fails clearly when the read does not grant the topic', async () => {
    peer.knobs.subscribeHeader = false;
    const r = await check('dual-publish');
    expect(r.ok).toBe(false);
    expect(r.summary).toMatch(/subscribing to collection:\S+ was refused: error forbiddenError/);
  });
});

describe('subscribe-headers', () => {
  it('passes when a read through Bifrost subscribes the socket, fails when Sync sends no header', async () => {
    const ok = await check('subscribe-headers');
    expect(ok.summary).toMatch(/^reading \/collection\/\S+ through Bifrost subscribed the socket to collection:\S+$/);
    expect(ok.output[0]).toMatch(/x-bifrost-subscribe: collection:/);
    peer.knobs.subscribeHeader = false;
    const bad = await check('subscribe-headers');
    expect(bad.ok).toBe(false);
    expect(bad.summary).toMatch(/did not subscribe the socket .* within 800 ms \(Sync sent no x-bifrost-subscribe header/);
  });
});

describe('route-parity', () => {
  it('compares every manifest route through Sync and /v1/proxy, ids and timestamps masked', async () => {
    registerCollections();
    const r = await check('route-parity');
    expect(r.output).toHaveLength(4);
    expect(r.output.every((l) => l.startsWith('✓'))).toBe(true);
    expect(r).toMatchObject({ ok: true, summary: '4 route(s) answer the same through Sync and Bifrost' });
  });

  it('names the route and the first difference when Bifrost answers differently', async () => {
    registerCollections();
    peer.knobs.proxyTamper = true;
    const r = await check('route-parity');
    expect(r.ok).toBe(false);
    expect(r.summary).toBe('2 of 4 route(s) differ between Sync and Bifrost');
    expect(r.output[0]).toMatch(/^✓ list a workspace's collections/);
    expect(r.output[1]).toMatch(/^✗ read one collection \(GET \/collection\/\S+\): \$\.name: "probe \w+" ≠ "tampered"$/);
    expect(r.output[3]).toMatch(/^✗ rename a collection \(PATCH \/collection\/\S+\): \$\.name: "parity \w+" ≠ "tampered"$/);
  });

  it('compares a DELETE on a fresh probe record per side (ownProbeRecord), leaving no record behind', async () => {
    registerCollections();
    await editManifest((t) =>
      t.replace('    safeToRepeat: true\n', '    safeToRepeat: true\n  - name: delete a collection\n    method: DELETE\n    path: /collection/{id}\n    ownProbeRecord: true\n'),
    );
    const r = await check('route-parity');
    expect(r.output[4]).toMatch(/^✓ delete a collection \(DELETE \/collection\/\S+\)$/);
    expect(r).toMatchObject({ ok: true, summary: '5 route(s) answer the same through Sync and Bifrost' });
    expect(peer.records.size).toBe(0);
  });

  it('reports an unregistered service as Bifrost refusing the request', async () => {
    const r = await check('route-parity');
    expect(r.ok).toBe(false);
    expect(r.output[0]).toMatch(/Bifrost refused the request \(404 invalidServiceError: unknown service "collections"\)/);
  });
});

describe('canary', () => {
  const withCanary = async (opts: string) => {
    await writeCollectionsFixture(dir, peer.syncUrl, opts);
    sq = (await loadCatalog({ migrationsDir: path.join(dir, 'migrations'), playbooksDir: path.join(dir, 'playbooks') })).squads[0]!;
  };

  it('fails below the rollout percentage, with the command to raise it', async () => {
    peer.knobs.percent = 1;
    const r = await check('canary');
    expect(r.ok).toBe(false);
    expect(r.summary).toBe('rollout is at 1%, below the canary\'s 5%: run `bifrost rollout set 5`');
  });

  it('does not pass without Bifrost traffic: 20 upgrades by default, and the count carries over to the next run', async () => {
    peer.knobs.percent = 10;
    const idle = await check('canary');
    expect(idle.ok).toBe(false);
    expect(idle.summary).toMatch(/^only 0 Bifrost upgrades in the 0s since \S+, need 20 to judge the failure rate: run the check again later \(the count carries over\)$/);
    peer.knobs.okPerScrape = 12; // 12 now, 12 more at the next run: 24 since the first run's mark
    await scrape();
    const carried = await check('canary');
    expect(carried.ok).toBe(true);
    expect(carried.summary).toMatch(/^10% on Bifrost, failure rate 0\.00% over 24 upgrades, healthy for 0s$/);
  });

  it('fails when the Bifrost failure rate is above the guard, passes when under it', async () => {
    Object.assign(peer.knobs, { percent: 10, okPerScrape: 90, errorsPerScrape: 10 });
    const bad = await check('canary');
    expect(bad.summary).toBe('Bifrost upgrade failure rate 10.00% (10 of 100) is above 1.00%: the healthy streak restarts');
    Object.assign(peer.knobs, { okPerScrape: 1000, errorsPerScrape: 1 });
    const ok = await check('canary');
    expect(ok.ok).toBe(true);
    expect(ok.summary).toMatch(/^10% on Bifrost, failure rate 0\.10% over 1001 upgrades, healthy for 0s$/);
  });

  it('counts rejected upgrades as failures and aborted ones as neither, like the shim and the ramp guard', async () => {
    Object.assign(peer.knobs, { percent: 10, okPerScrape: 90, rejectedPerScrape: 10, abortedPerScrape: 500 });
    const rejected = await check('canary');
    expect(rejected.ok).toBe(false);
    expect(rejected.summary).toBe('Bifrost upgrade failure rate 10.00% (10 of 100) is above 1.00%: the healthy streak restarts');
    Object.assign(peer.knobs, { okPerScrape: 100, rejectedPerScrape: 0 });
    const aborted = await check('canary');
    expect(aborted.ok).toBe(true);
    expect(aborted.summary).toMatch(/failure rate 0\.00% over 100 upgrades/);
  });

  it('measures the healthy streak across runs', async () => {
    await withCanary('{ forSeconds: 2, sampleSeconds: 0.1 }');
    Object.assign(peer.knobs, { percent: 5, okPerScrape: 50 });
    const first = await check('canary');
    expect(first.ok).toBe(false);
    expect(first.summary).toMatch(/^canary healthy for 0s of the 2s required: run the check again after /);
    await new Promise((r) => setTimeout(r, 2100));
    const second = await check('canary');
    expect(second.ok).toBe(true);
    expect(second.summary).toMatch(/healthy for [23]s$/);
  });

  it('starts over after the step is reopened: the streak before the reopen does not count', async () => {
    await withCanary('{ forSeconds: 2, sampleSeconds: 0.1 }');
    Object.assign(peer.knobs, { percent: 5, okPerScrape: 50 });
    // Its dependencies done by hand, so that a passing canary completes the step.
    for (const id of ['inventory', 'register-service', 'dual-publish', 'subscribe-headers', 'route-parity']) {
      await store.update('collections', completeStep(sq, findStep(sq, id), { by: 'ana', evidence: 'https://example.test/evidence' }));
    }
    expect((await check('canary')).ok).toBe(false);
    await new Promise((r) => setTimeout(r, 2100));
    expect(await check('canary')).toMatchObject({ ok: true, status: 'done' });
    await store.update('collections', reopenStep(sq, findStep(sq, 'canary'), { by: 'ana', reason: 'errors seen in production' }));
    const after = await check('canary');
    expect(after.ok).toBe(false);
    expect(after.summary).toMatch(/^canary healthy for 0s of the 2s required/);
  });

  it('judges the whole time between runs: failures in between restart the streak', async () => {
    await withCanary('{ forSeconds: 2, sampleSeconds: 0.1 }');
    Object.assign(peer.knobs, { percent: 5, okPerScrape: 50 });
    const first = await check('canary');
    expect(first.summary).toMatch(/^canary healthy for 0s of the 2s required/);
    // Between the runs, Bifrost fails a lot (the shim's counters move; nobody runs the check).
    Object.assign(peer.knobs, { okPerScrape: 0, errorsPerScrape: 300 });
    await scrape();
    Object.assign(peer.knobs, { okPerScrape: 50, errorsPerScrape: 0 });
    await new Promise((r) => setTimeout(r, 2100));
    const second = await check('canary');
    expect(second.ok).toBe(false);
    expect(second.summary).toBe('Bifrost upgrade failure rate 85.71% (300 of 350) is above 1.00%: the healthy streak restarts');
    expect(second.output.join('\n')).toMatch(/350 upgrades in the [23]s since /);
  });

  it('restarts the streak when the flag changed more than once since the last run (the percentage may have dipped)', async () => {
    await withCanary('{ forSeconds: 1, sampleSeconds: 0.1 }');
    Object.assign(peer.knobs, { percent: 10, okPerScrape: 50, version: 4 });
    expect((await check('canary')).summary).toMatch(/^canary healthy for 0s of the 1s required/);
    await new Promise((r) => setTimeout(r, 1100));
    peer.knobs.version = 6; // e.g. set 0, then set 10 again
    const dipped = await check('canary');
    expect(dipped.ok).toBe(false);
    expect(dipped.output).toContain('the flag changed 2 times since the last run (version 4 → 6): the percentage may have been below 5% in between: the period since the last run cannot be judged, the streak restarts');
    expect(dipped.summary).toMatch(/^canary healthy for 0s of the 1s required/);
    await new Promise((r) => setTimeout(r, 1100));
    peer.knobs.version = 7; // one change, to the 10 % seen now: the streak goes on
    const raised = await check('canary');
    expect(raised.ok).toBe(true);
  });
});

describe('cutover', () => {
  it('fails while the prefix still routes to sync, passes once the squad\'s service owns it', async () => {
    peer.knobs.percent = 100;
    const before = await check('cutover');
    expect(before.ok).toBe(false);
    expect(before.summary).toBe('collections is not registered');
    peer.services.set('collections', { name: 'collections', upstream: peer.syncUrl, prefixes: ['/collection/archive'] });
    const partial = await check('cutover');
    expect(partial.output).toContain('✗ /collection → sync (the legacy service)');
    registerCollections();
    const after = await check('cutover');
    expect(after.ok).toBe(true);
    expect(after.output[0]).toBe('✓ rollout: 100% on Bifrost (need 100%)');
    expect(after.output[1]).toBe(`✓ /collection → collections (${peer.syncUrl})`);
    expect(after.output[2]).toMatch(/same process as "sync"/);
  });

  it('fails below 100 % even when the service owns every prefix: users on Sync still use the feature there', async () => {
    registerCollections();
    for (const percent of [0, 5, 99.5]) {
      peer.knobs.percent = percent;
      const r = await check('cutover');
      expect(r.ok).toBe(false);
      expect(r.summary).toBe(`rollout is at ${percent}%, cutover needs 100%: ramp up first (\`bifrost rollout ramp --steps 25,50,100 --interval 30m\`), then check again`);
      expect(r.status).toBe('pending');
    }
  });
});

describe('probe record', () => {
  it('never deletes a fixed-id record it did not create, even with a cleanup (validation refuses that; the check does not rely on it)', async () => {
    peer.records.set('real-1', { id: 'real-1', name: 'a real collection' });
    const m = sq.manifest;
    const probe = { ...m.probe!, id: 'real-1' };
    delete (probe as { create?: unknown }).create;
    const ctx = { squad: { ...m, probe }, step: findStep(sq, 'dual-publish'), params: {}, stack, progress: () => {} };
    const seen = await withProbeRecord(ctx, 2000, async ({ vars }) => vars.id);
    expect(seen).toBe('real-1');
    expect(peer.records.has('real-1')).toBe(true);
  });
});

describe('the whole playbook', () => {
  it('one `check` run on a ready stack completes every automated step in dependency order; cutover waits for 100 %', async () => {
    registerCollections();
    Object.assign(peer.knobs, { percent: 5, okPerScrape: 50 });
    const at5 = await runChecks({ sq, store, stack, reporter: silent });
    expect(at5.map((r) => [r.step, r.skipped ?? (r.ok ? 'pass' : `fail: ${r.summary}`)])).toEqual([
      ['inventory', 'pass'],
      ['register-service', 'pass'],
      ['dual-publish', 'pass'],
      ['subscribe-headers', 'pass'],
      ['route-parity', 'pass'],
      ['canary', 'pass'],
      ['cutover', 'fail: rollout is at 5%, cutover needs 100%: ramp up first (`bifrost rollout ramp --steps 25,50,100 --interval 30m`), then check again'],
      ['decommission', 'manual'],
    ]);
    peer.knobs.percent = 100;
    const results = await runChecks({ sq, store, stack, reporter: silent });
    expect(results.map((r) => [r.step, r.skipped ?? (r.ok ? 'pass' : `fail: ${r.summary}`)])).toEqual([
      ['inventory', 'done'],
      ['register-service', 'done'],
      ['dual-publish', 'done'],
      ['subscribe-headers', 'done'],
      ['route-parity', 'done'],
      ['canary', 'done'],
      ['cutover', 'pass'],
      ['decommission', 'manual'],
    ]);
    const state = await store.read('collections');
    expect(Object.values(state.steps).filter((s) => s.status === 'done')).toHaveLength(7);
    expect(state.steps.cutover).toMatchObject({ status: 'done', by: 'check', via: 'check' });
    const again = await runChecks({ sq, store, stack, reporter: silent });
    expect(again.filter((r) => r.skipped === 'done')).toHaveLength(7);
  });
});
