/**
 * The collections squad's live checks against the real components, in
 * process: the Bifrost gateway (gateway/, memory broker) and the reference
 * Sync app (legacy/, dual-publish bridge on). The canary needs the shim and is
 * covered against the admin peer in migration-checks.test.ts; here a one-route
 * stand-in for the shim admin API answers `GET /api/rollout` for cutover.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findStep, loadCatalog, type SquadMigration } from '../../cli/migration/catalog.ts';
import { runChecks } from '../../cli/migration/check-runner.ts';
import { FileStateStore } from '../../cli/migration/state-store-file.ts';
import type { StackEndpoints } from '../../cli/migration/step-check.ts';
import { startSyncReference, type SyncReference } from '../../legacy/sync-app.ts';
import type { RunningGateway } from '../../gateway/gateway.ts';
import { privateCall, startTestGateway, TEST_SECRET, TEST_SERVICE_TOKEN } from '../support/gateway.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { signAccessToken } from '../../gateway/token.ts';
import { writeCollectionsFixture } from './migration-stack-peer.ts';

let gateway: RunningGateway;
let sync: SyncReference;
let dir: string;
let sq: SquadMigration;
let store: FileStateStore;
let stack: StackEndpoints;
let admin: http.Server;
let percent = 0;

beforeAll(async () => {
  admin = http.createServer((req, res) => {
    res.writeHead(req.url === '/api/rollout' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.url === '/api/rollout' ? { percent, bucketBy: 'user', version: 1 } : {}));
  });
  await new Promise<void>((r) => admin.listen(0, '127.0.0.1', r));
  // Sails lifts in this same process: give the node room so admission control does not refuse the probes.
  gateway = await startTestGateway({ load: { cpu: 64, eventLoopDelay: 60_000 } });
  sync = await startSyncReference({
    port: 0,
    tokenSecret: TEST_SECRET,
    bifrostPrivateUrl: gateway.privateUrl,
    serviceToken: TEST_SERVICE_TOKEN,
    log: silentLogger,
    sailsLogLevel: 'silent',
  });
  // What `bifrost up` does: everything not moved yet reaches Sync.
  expect((await privateCall(gateway.privateUrl, 'PUT', '/v1/services/sync', { upstream: sync.url, prefixes: ['/'] })).status).toBe(200);
  dir = await mkdtemp(path.join(tmpdir(), 'bifrost-migration-real-'));
  await writeCollectionsFixture(dir, sync.url);
  sq = (await loadCatalog({ migrationsDir: path.join(dir, 'migrations'), playbooksDir: path.join(dir, 'playbooks') })).squads[0]!;
  store = new FileStateStore(path.join(dir, 'state.json'));
  stack = { privateUrl: gateway.privateUrl, gatewayUrl: gateway.publicUrl, syncUrl: sync.url, adminUrl: `http://127.0.0.1:${(admin.address() as AddressInfo).port}`, serviceToken: TEST_SERVICE_TOKEN, tokenSecret: TEST_SECRET };
}, 60_000);

afterAll(async () => {
  admin?.closeAllConnections();
  await new Promise((r) => admin?.close(r));
  await sync?.close();
  await gateway?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const silent = { begin: () => () => {}, end: () => {} };
const check = async (step: string) => (await runChecks({ sq, store, stack, only: findStep(sq, step), reporter: silent }))[0]!;

describe('collections against the real gateway and reference Sync', () => {
  it('inventory, then register-service fails until the service is registered', async () => {
    expect((await check('inventory')).ok).toBe(true);
    const before = await check('register-service');
    expect(before).toMatchObject({ ok: false, summary: 'collections is not registered' });
    expect((await privateCall(gateway.privateUrl, 'PUT', '/v1/services/collections', { upstream: sync.url, prefixes: ['/collection'] })).status).toBe(200);
    const after = await check('register-service');
    expect(after.summary).toBe('1 service(s) registered as the manifest says');
    expect(after).toMatchObject({ ok: true, status: 'done' });
  });

  it('dual-publish: an update through Sync reaches a native Bifrost socket', async () => {
    const r = await check('dual-publish');
    expect(r.summary).toMatch(/^Sync's update reached Bifrost as "collection" on collection:\S+ in \d+ ms$/);
    expect(r.output.join('\n')).toContain('via service collections: response 200');
  });

  it('subscribe-headers: a read through Bifrost subscribes the socket', async () => {
    const r = await check('subscribe-headers');
    expect(r.output[0]).toMatch(/x-bifrost-subscribe: collection:\S+/);
    expect(r.summary).toMatch(/subscribed the socket to collection:/);
    expect(r.ok).toBe(true);
  });

  it('route-parity: every manifest route answers the same through Sync and /v1/proxy', async () => {
    const r = await check('route-parity');
    expect(r.output).toHaveLength(4);
    expect(r.summary).toBe('4 route(s) answer the same through Sync and Bifrost');
  });

  it('route-parity: a DELETE route on its own probe record per side (ownProbeRecord) answers the same and leaves nothing behind', async () => {
    const file = path.join(dir, 'migrations/collections.yaml');
    const original = await readFile(file, 'utf8');
    try {
      await writeFile(file, original.replace('    safeToRepeat: true\n', '    safeToRepeat: true\n  - name: delete a collection\n    method: DELETE\n    path: /collection/{id}\n    ownProbeRecord: true\n'));
      const withDelete = (await loadCatalog({ migrationsDir: path.join(dir, 'migrations'), playbooksDir: path.join(dir, 'playbooks') })).squads[0]!;
      const [r] = await runChecks({ sq: withDelete, store, stack, only: findStep(withDelete, 'route-parity'), reporter: silent });
      expect(r!.output[4]).toMatch(/^✓ delete a collection \(DELETE \/collection\/\S+\)$/);
      expect(r!.summary).toBe('5 route(s) answer the same through Sync and Bifrost');
      const token = await signAccessToken(TEST_SECRET, { userId: sq.manifest.probeUser.id, teamId: sq.manifest.probeUser.team });
      const left = (await (await fetch(`${sync.url}/collection?workspace=bifrost-probe`, { headers: { 'x-access-token': token } })).json()) as unknown[];
      expect(left).toEqual([]);
    } finally {
      await writeFile(file, original);
    }
  });

  it('cutover: fails below 100 % although /collection routes to the collections service', async () => {
    percent = 5;
    const r = await check('cutover');
    expect(r.ok).toBe(false);
    expect(r.summary).toMatch(/^rollout is at 5%, cutover needs 100%/);
    expect(r.output).toContain(`✓ /collection → collections (${sync.url})`);
  });

  it('cutover: passes at 100 % with /collection routed to the collections service, not sync', async () => {
    percent = 100;
    const r = await check('cutover');
    expect(r.output[0]).toBe('✓ rollout: 100% on Bifrost (need 100%)');
    expect(r.output[1]).toBe(`✓ /collection → collections (${sync.url})`);
    expect(r.ok).toBe(true);
  });
});
