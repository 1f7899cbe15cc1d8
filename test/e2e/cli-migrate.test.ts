/**
 * `bifrost migrate …` as a user runs it: subprocesses on the file store
 * (`--state-file`), exit codes 0/1/2, --json and --help on every command,
 * validation errors with file:line, concurrency across 20 processes, a
 * corrupt state file, every report format, and the checks against live peers.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { PEER_SECRET, PEER_SERVICE_TOKEN, startStackPeer, type StackPeer } from '../integration/migration-stack-peer.ts';
import { freePort } from '../support/redis-server.ts';
import { runCli, writeShippedFixture, writeWideFixture } from './cli-migrate-support.ts';

// Each CLI run is a fresh node + tsx process (~2 s of CPU); on a busy 2-core machine they queue.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 120_000 });

let dir: string;
let dirs: { migrationsDir: string; playbooksDir: string };
let stateFile: string;
const where = () => ['--migrations-dir', dirs.migrationsDir, '--playbooks-dir', dirs.playbooksDir, '--state-file', stateFile];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bifrost-cli-migrate-'));
  dirs = await writeShippedFixture(dir);
  stateFile = path.join(dir, '.bifrost/state.json');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('help and usage', () => {
  it('every migrate command has --help with an example, and --json', async () => {
    for (const cmd of ['list', 'show', 'check', 'complete', 'reopen', 'report']) {
      const r = await runCli(['migrate', cmd, '--help']);
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(/Examples?:\n {2}\$ bifrost migrate /);
      expect(r.stdout, cmd).toContain('--json');
    }
    const check = await runCli(['migrate', 'check', '--help']);
    for (const o of ['--private-url', '--gateway-url', '--sync-url', '--admin-url', '--event-timeout-ms', '--migrations-dir', '--playbooks-dir', '--state-file']) expect(check.stdout).toContain(o);
  });

  it('bad usage exits 2 with one line saying what is wrong', async () => {
    const noReason = await runCli(['migrate', 'reopen', 'collections', 'inventory', '--by', 'ada', ...where()]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/required option '--reason <text>' not specified/);
    const format = await runCli(['migrate', 'report', '--format', 'pdf', ...where()]);
    expect(format.code).toBe(2);
    expect(format.stderr).toMatch(/Allowed choices are table, md, json, html/);
    const squad = await runCli(['migrate', 'show', 'payments', ...where()]);
    expect(squad).toMatchObject({ code: 2, stderr: 'bifrost: unknown squad "payments": expected one of collections, notifications, workspaces\n' });
    const step = await runCli(['migrate', 'complete', 'collections', 'deploy', '--by', 'ada', ...where()]);
    expect(step.code).toBe(2);
    expect(step.stderr).toContain('unknown step "deploy": playbook "sync-to-bifrost" has inventory, register-service,');
    const url = await runCli(['migrate', 'check', 'collections', 'register-service', '--private-url', 'ftp://x', ...where()]);
    expect(url).toMatchObject({ code: 2 });
    expect(url.stderr).toContain('--private-url must be an http(s) URL, got "ftp://x"');
  });
});

describe('validation errors', () => {
  it('a broken manifest is a row "invalid manifest" in list and report (exit 1); other squads work, the broken one is refused (exit 2)', async () => {
    const file = path.join(dirs.migrationsDir, 'notifications.yaml');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('targetDate: 2027-02-26', 'targetDate: next spring').replace('    upstream: http://notifications.internal:8000', '    upstream: notifications'));
    const dateProblem = /notifications\.yaml:14:1 targetDate: expected a date YYYY-MM-DD, got "next spring"/;
    const upstreamProblem = /notifications\.yaml:20:5 services\[0\]\.upstream: expected an http\(s\) URL/;

    const list = await runCli(['migrate', 'list', ...where()]);
    expect(list.code).toBe(1);
    expect(list.stdout).toMatch(/collections\s+│ -+ 0\/8\s+│ inventory/);
    expect(list.stdout).toMatch(/workspaces\s+│ -+ 0\/8\s+│ inventory/);
    expect(list.stdout).toMatch(/notifications\s+│ invalid manifest\s+│ \S*notifications\.yaml:14:1 targetDate: expected a date YYYY-MM-DD, got "next spring"/);
    expect(list.stdout).toMatch(upstreamProblem);
    expect(list.stderr).toMatch(/^bifrost: 1 squad manifest is invalid \(shown as "invalid manifest"; the other squads are not affected\):\n/);
    expect(list.stderr).toMatch(dateProblem);
    expect(list.stderr).toMatch(upstreamProblem);

    const json = await runCli(['migrate', 'list', '--json', ...where()]);
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.squads.map((s: { squad: string }) => s.squad)).toEqual(['collections', 'workspaces']);
    expect(parsed.invalid).toEqual([
      {
        squad: 'notifications',
        file,
        status: 'invalid manifest',
        problems: [expect.objectContaining({ line: 14, column: 1, field: 'targetDate', message: expect.stringMatching(dateProblem) }), expect.objectContaining({ line: 20, field: 'services[0].upstream' })],
      },
    ]);

    const show = await runCli(['migrate', 'show', 'collections', ...where()]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^collections — Collections\n/);
    expect(show.stderr).toBe(`warning: 1 other squad manifest is invalid (\`bifrost migrate list\` shows the problems): ${file}\n`);
    const complete = await runCli(['migrate', 'complete', 'workspaces', 'inventory', '--by', 'ada', '--evidence', 'reviewed', ...where()]);
    expect(complete).toMatchObject({ code: 0, stdout: '✓ workspaces/inventory done, by ada\n' });

    const broken = await runCli(['migrate', 'show', 'notifications', ...where()]);
    expect(broken.code).toBe(2);
    expect(broken.stdout).toBe('');
    expect(broken.stderr).toMatch(/^bifrost: squad "notifications" has an invalid manifest \(2 problems; other squads are not affected\):\n/);
    expect(broken.stderr).toMatch(dateProblem);
    expect(broken.stderr).toMatch(upstreamProblem);

    const md = await runCli(['migrate', 'report', '--format', 'md', ...where()]);
    expect(md.code).toBe(1);
    expect(md.stdout).toMatch(/\| workspaces \| ▰▱+ 1\/8 \|/);
    expect(md.stdout).toMatch(/\| notifications \| \*\*invalid manifest\*\* \| \S*notifications\.yaml:14:1 targetDate: expected a date YYYY-MM-DD, got "next spring"<br>/);
  });

  it('a broken playbook still stops every command (exit 2); the same squad twice makes both files invalid', async () => {
    const pb = path.join(dirs.playbooksDir, 'sync-to-bifrost.yaml');
    await writeFile(pb, (await readFile(pb, 'utf8')).replace('    dependsOn: [inventory]\n    check:\n      type: register-service', '    dependsOn: [cutover]\n    check:\n      type: register-service'));
    const cycle = await runCli(['migrate', 'list', ...where()]);
    expect(cycle.code).toBe(2);
    expect(cycle.stdout).toBe('');
    expect(cycle.stderr).toMatch(/sync-to-bifrost\.yaml:\d+:\d+ steps\[\d\]\.dependsOn\[\d\]: expected dependencies without a cycle, found .*register-service.*→.*cutover/);
    const cycleShow = await runCli(['migrate', 'show', 'collections', ...where()]);
    expect(cycleShow.code).toBe(2);
    dirs = await writeShippedFixture(path.join(dir, 'again'));
    await writeFile(path.join(dirs.migrationsDir, 'collections-copy.yaml'), await readFile(path.join(dirs.migrationsDir, 'collections.yaml'), 'utf8'));
    const dup = await runCli(['migrate', 'list', ...where()]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/collections-copy\.yaml:\d+:1 squad: expected a unique squad name, "collections" is also defined in .*collections\.yaml:\d+/);
    expect(dup.stderr).toMatch(/collections\.yaml:\d+:1 squad: expected a unique squad name, "collections" is already defined in .*collections-copy\.yaml:\d+/);
    expect(dup.stdout.match(/collections\s+│ invalid manifest/g)).toHaveLength(2);
    expect(dup.stdout).toMatch(/notifications\s+│ -+ 0\/8/);
    const dupShow = await runCli(['migrate', 'show', 'collections', ...where()]);
    expect(dupShow.code).toBe(2);
    expect(dupShow.stderr).toMatch(/^bifrost: squad "collections" has an invalid manifest \(2 problems; other squads are not affected\)/);
  });
});

describe('complete, reopen, show', () => {
  it('records manual completions once, refuses what the playbook forbids, and keeps the history', async () => {
    const done = await runCli(['migrate', 'complete', 'collections', 'inventory', '--by', 'ada@example.com', '--evidence', 'manifest reviewed', ...where()]);
    expect(done).toMatchObject({ code: 0, stdout: '✓ collections/inventory done, by ada@example.com\n' });
    const twice = await runCli(['migrate', 'complete', 'collections', 'inventory', '--by', 'bob', '--json', ...where()]);
    expect(twice.code).toBe(0);
    expect(JSON.parse(twice.stdout)).toMatchObject({ squad: 'collections', changed: false, message: expect.stringMatching(/already done \(by ada@example\.com at .*\); nothing changed/) });
    const early = await runCli(['migrate', 'complete', 'collections', 'cutover', '--by', 'ada', ...where()]);
    expect(early).toMatchObject({ code: 2, stderr: 'bifrost: cannot complete collections/cutover: it depends on canary, not done yet\n' });
    const reopened = await runCli(['migrate', 'reopen', 'collections', 'inventory', '--by', 'grace', '--reason', 'owners changed', ...where()]);
    expect(reopened).toMatchObject({ code: 0, stdout: '↺ collections/inventory reopened by grace: owners changed\n' });
    const show = await runCli(['migrate', 'show', 'collections', '--json', ...where()]);
    const p = JSON.parse(show.stdout);
    expect(p).toMatchObject({ squad: 'collections', done: 0, total: 8, nextStep: 'inventory' });
    expect(p.steps[0]).toMatchObject({ id: 'inventory', status: 'pending', by: 'grace', reason: 'owners changed' });
    expect(p.history.map((e: { action: string; by: string }) => `${e.action}:${e.by}`)).toEqual(['complete:ada@example.com', 'reopen:grace']);
    expect(p.history[1].previous).toMatchObject({ status: 'done', evidence: 'manifest reviewed' });
    const text = await runCli(['migrate', 'show', 'collections', '--history', '5', ...where()], { env: { NO_COLOR: '1' } });
    expect(text.stdout).toContain('reopened: owners changed');
    expect(text.stdout).toMatch(/inventory reopen by grace \(done → pending\) reason: owners changed/);
    expect(text.stdout).not.toContain('\x1b[');
  });

  it('a step that needs evidence is refused without it', async () => {
    const r = await runCli(['migrate', 'complete', 'collections', 'decommission', '--by', 'ada', ...where()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('step "decommission" needs evidence: add --evidence');
  });

  it('an automated step completed by hand without --evidence is refused in one line', async () => {
    const r = await runCli(['migrate', 'complete', 'collections', 'inventory', '--by', 'ada', ...where()]);
    expect(r).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'bifrost: step "inventory" is automated (check inventory): run `bifrost migrate check collections inventory`, or, to complete it by hand, say how it was verified with --evidence <link or text>\n',
    });
  });

  it('numeric options say what they count and respect the checks\' bounds', async () => {
    const history = await runCli(['migrate', 'show', 'collections', '--history', '0', ...where()]);
    expect(history).toMatchObject({ code: 2, stderr: 'bifrost: --history must be a positive integer (a number of audit entries), got "0"\n' });
    const timeout = await runCli(['migrate', 'check', 'collections', 'inventory', '--timeout-ms', '1', ...where()]);
    expect(timeout).toMatchObject({ code: 2, stderr: 'bifrost: --timeout-ms must be an integer from 100 to 600000 (milliseconds), got "1"\n' });
    const event = await runCli(['migrate', 'check', 'collections', 'inventory', '--event-timeout-ms', '200000', ...where()]);
    expect(event).toMatchObject({ code: 2, stderr: 'bifrost: --event-timeout-ms must be an integer from 100 to 120000 (milliseconds), got "200000"\n' });
  });

  it('show ends with the playbook\'s how for the next step, the squad filled in', async () => {
    await runCli(['migrate', 'check', 'collections', 'inventory', ...where()]);
    const show = await runCli(['migrate', 'show', 'collections', ...where()]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/how to do register-service \(\S+sync-to-bifrost\.yaml\):\n {2}curl -X PUT "http:\/\/127\.0\.0\.1:8081\/v1\/services\/<service>" .*\n {2}bifrost migrate check collections register-service\n$/);
    expect(show.stdout).not.toContain('$PRIVATE_URL');
    const json = JSON.parse((await runCli(['migrate', 'show', 'collections', '--json', ...where()])).stdout);
    expect(json.nextStepHow).toEqual([expect.stringMatching(/^curl -X PUT "http:\/\/127\.0\.0\.1:8081/), 'bifrost migrate check collections register-service']);
  });

  it('20 concurrent `complete` processes on different steps of one squad all land', async () => {
    const wide = await writeWideFixture(path.join(dir, 'wide'), 20);
    const args = (step: string, i: number) => ['migrate', 'complete', 'wide', step, '--by', `user-${i}`, '--evidence', `e${i}`, '--migrations-dir', wide.migrationsDir, '--playbooks-dir', wide.playbooksDir, '--state-file', stateFile, '--json'];
    const runs = await Promise.all(wide.steps.map((s, i) => runCli(args(s, i), { timeoutMs: 400_000 })));
    expect(runs.map((r) => r.code)).toEqual(wide.steps.map(() => 0));
    expect(runs.every((r) => JSON.parse(r.stdout).changed === true)).toBe(true);
    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    expect(Object.keys(state.squads.wide.steps).sort()).toEqual(wide.steps);
    expect(state.squads.wide.version).toBe(20);
    expect(state.audit).toHaveLength(20);
  }, 600_000);

  it('a corrupt state file is refused with a clear error and left as it was', async () => {
    await runCli(['migrate', 'complete', 'collections', 'inventory', '--by', 'ada', '--evidence', 'reviewed', ...where()]);
    const broken = (await readFile(stateFile, 'utf8')).slice(0, 40);
    await writeFile(stateFile, broken);
    for (const args of [['migrate', 'complete', 'collections', 'register-service', '--by', 'ada'], ['migrate', 'list']]) {
      const r = await runCli([...args, ...where()]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^bifrost: state file .*state\.json is corrupt \(not JSON: .*\); it was left untouched\./);
    }
    expect(await readFile(stateFile, 'utf8')).toBe(broken);
  });
});

describe('list and report', () => {
  it('list shows progress, next step, owner and target; overdue in red only when colors are on', async () => {
    const file = path.join(dirs.migrationsDir, 'workspaces.yaml');
    await writeFile(file, (await readFile(file, 'utf8')).replace('targetDate: 2027-05-15', 'targetDate: 2024-01-31'));
    await runCli(['migrate', 'complete', 'collections', 'inventory', '--by', 'ada', '--evidence', 'reviewed', ...where()]);
    const plain = await runCli(['migrate', 'list', ...where()]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).not.toContain('\x1b[');
    expect(plain.stdout).toMatch(/collections\s+│ ##-{10} 1\/8\s+│ register-service\s+│ Ada Lovelace/);
    expect(plain.stdout).toMatch(/workspaces\s+│ -+ 0\/8\s+│ inventory\s+│ Katherine Johnson .*│ 2024-01-31 overdue/);
    expect(plain.stdout).toContain(`state: file ${stateFile}`);
    const sentinels = await runCli(['migrate', 'list', ...where()], { env: { REDIS_SENTINELS: '127.0.0.1:26379', REDIS_CLUSTER_NODES: '127.0.0.1:7000' } });
    expect(sentinels.code).toBe(0);
    expect(sentinels.stderr).toBe(
      'warning: REDIS_SENTINELS and REDIS_CLUSTER_NODES are set but REDIS_URL is not: migration state does not use Redis Sentinel or Cluster, it is kept in the state file; set REDIS_URL (e.g. the primary) to share it in Redis\n',
    );
    expect(sentinels.stdout).toContain(`state: file ${stateFile}`);
    const colored = await runCli(['migrate', 'list', ...where()], { env: { FORCE_COLOR: '1' } });
    expect(colored.stdout).toContain('\x1b[31m2024-01-31 overdue\x1b[39m');
    const noColor = await runCli(['migrate', 'list', ...where()], { env: { FORCE_COLOR: '1', NO_COLOR: '1' } });
    expect(noColor.stdout).not.toContain('\x1b[');
    const json = JSON.parse((await runCli(['migrate', 'list', '--json', ...where()])).stdout);
    expect(json.squads.map((s: { squad: string; done: number; overdue: boolean }) => [s.squad, s.done, s.overdue])).toEqual([
      ['collections', 1, false],
      ['notifications', 0, false],
      ['workspaces', 0, true],
    ]);
  });

  it('report renders table, Markdown, JSON and a self-contained HTML page', async () => {
    await runCli(['migrate', 'complete', 'collections', 'inventory', '--by', 'ada', '--evidence', 'https://example.com/pr/7', ...where()]);
    const table = await runCli(['migrate', 'report', ...where()]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/collections — Collections \(Ada Lovelace/);
    expect(table.stdout).toMatch(/state: file \S+state\.json\n$/);
    const md = await runCli(['migrate', 'report', '--format', 'md', ...where()]);
    expect(md.stdout).toMatch(/^# Bifrost migration report\n/);
    expect(md.stdout).toContain('| [x] | **inventory** Write down the feature in a manifest | done | ada |');
    const json = await runCli(['migrate', 'report', '--format', 'json', ...where()]);
    expect(JSON.parse(json.stdout).squads[0]).toMatchObject({ squad: 'collections', done: 1, steps: [{ id: 'inventory', evidence: 'https://example.com/pr/7' }, {}, {}, {}, {}, {}, {}, {}] });
    const viaFlag = await runCli(['migrate', 'report', '--json', ...where()]);
    expect(JSON.parse(viaFlag.stdout).squads).toHaveLength(3);
    const html = await runCli(['migrate', 'report', '--format', 'html', ...where()]);
    expect(html.stdout).toMatch(/^<!doctype html>/);
    expect(html.stdout).toContain('<a href="https://example.com/pr/7">');
    expect(html.stdout).not.toMatch(/<script|<link|src=/);
  });
});

describe('check against a live stack', () => {
  let peer: StackPeer;
  beforeAll(async () => {
    peer = await startStackPeer();
  });
  afterAll(async () => {
    await peer.close();
  });
  const stackArgs = () => ['--private-url', peer.privateUrl, '--gateway-url', peer.gatewayUrl, '--sync-url', peer.syncUrl, '--admin-url', peer.adminUrl];
  const env = { BIFROST_SERVICE_TOKEN: PEER_SERVICE_TOKEN, BIFROST_TOKEN_SECRET: PEER_SECRET };

  it('migrates the collections squad end to end: checks, then the manual step', async () => {
    dirs = await writeShippedFixture(dir, { syncUrl: peer.syncUrl, extraCollections: 'stepOptions:\n  canary: { forSeconds: 0, sampleSeconds: 0.2 }\n' });
    peer.services.set('sync', { name: 'sync', upstream: peer.syncUrl, prefixes: ['/'] });
    peer.knobs.percent = 0;
    const early = await runCli(['migrate', 'check', 'collections', ...where(), ...stackArgs()], { env });
    expect(early.code).toBe(1);
    expect(early.stdout).toMatch(/^✓ inventory — manifest .* is complete/m);
    expect(early.stdout).toMatch(/^✗ register-service — collections is not registered/m);
    expect(early.stdout).toContain('curl -X PUT');
    expect(early.stdout).toMatch(/^✓ dual-publish — Sync's update reached Bifrost as "collection" on collection:\S+ in \d+ ms/m);
    expect(early.stdout).toMatch(/^✓ subscribe-headers — reading \/collection\/\S+ through Bifrost subscribed the socket/m);
    expect(early.stdout).toMatch(/^· route-parity — waiting on register-service$/m);
    expect(early.stdout).toMatch(/^collections: 4 check\(s\) run, 3 passed, 1 failed · 3\/8 steps done · next: register-service$/m);
    // A failed run ends with the playbook's how for the next step.
    expect(early.stdout).toMatch(/\nhow to do register-service \(\S+\):\n {2}curl -X PUT "http:\/\/127\.0\.0\.1:8081\/v1\/services\/<service>".*\n {2}bifrost migrate check collections register-service\n$/);
    expect(early.stdout).not.toContain('\x1b[');
    peer.services.set('collections', { name: 'collections', upstream: peer.syncUrl, prefixes: ['/collection'] });
    Object.assign(peer.knobs, { percent: 5, okPerScrape: 50 });
    const at5 = await runCli(['migrate', 'check', 'collections', '--json', ...where(), ...stackArgs()], { env });
    expect(at5.code).toBe(1);
    const out5 = JSON.parse(at5.stdout);
    expect(out5.results.map((r: { step: string; ok?: boolean; skipped?: string }) => `${r.step}:${r.skipped ?? r.ok}`)).toEqual([
      'inventory:done',
      'register-service:true',
      'dual-publish:done',
      'subscribe-headers:done',
      'route-parity:true',
      'canary:true',
      'cutover:false',
      'decommission:manual',
    ]);
    expect(out5.results[6].summary).toBe('rollout is at 5%, cutover needs 100%: ramp up first (`bifrost rollout ramp --steps 25,50,100 --interval 30m`), then check again');
    expect(out5.progress).toMatchObject({ done: 6, total: 8, nextStep: 'cutover', nextStepHow: ['bifrost rollout ramp --steps 25,50,100 --interval 30m', 'bifrost migrate check collections cutover'] });
    const decommissionEarly = await runCli(['migrate', 'complete', 'collections', 'decommission', '--by', 'ada', '--evidence', 'https://git.example.com/sync/pull/812', ...where()]);
    expect(decommissionEarly).toMatchObject({ code: 2, stderr: 'bifrost: cannot complete collections/decommission: it depends on cutover, not done yet\n' });
    peer.knobs.percent = 100;
    const rest = await runCli(['migrate', 'check', 'collections', '--json', ...where(), ...stackArgs()], { env });
    expect(rest.code).toBe(0);
    const out = JSON.parse(rest.stdout);
    expect(out.results.map((r: { step: string; ok?: boolean; skipped?: string }) => `${r.step}:${r.skipped ?? r.ok}`)).toEqual([
      'inventory:done',
      'register-service:done',
      'dual-publish:done',
      'subscribe-headers:done',
      'route-parity:done',
      'canary:done',
      'cutover:true',
      'decommission:manual',
    ]);
    expect(out.progress).toMatchObject({ done: 7, total: 8, nextStep: 'decommission' });
    const last = await runCli(['migrate', 'complete', 'collections', 'decommission', '--by', 'ada', '--evidence', 'https://git.example.com/sync/pull/812', ...where()]);
    expect(last.code).toBe(0);
    const list = JSON.parse((await runCli(['migrate', 'list', '--json', ...where()])).stdout);
    expect(list.squads[0]).toMatchObject({ squad: 'collections', done: 8, total: 8, complete: true, nextStep: null });
  });

  it('a failing check exits 1 and records its output; a single passing check marks the step done by check', async () => {
    dirs = await writeShippedFixture(dir, { syncUrl: peer.syncUrl, extraCollections: 'stepOptions:\n  dual-publish: { eventTimeoutMs: 500 }\n' });
    await runCli(['migrate', 'check', 'collections', 'inventory', ...where()], { env });
    peer.knobs.bridge = false;
    try {
      const r = await runCli(['migrate', 'check', 'collections', 'dual-publish', ...where(), ...stackArgs()], { env });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/✗ dual-publish — no "collection" event on collection:\S+ within 500 ms/);
    } finally {
      peer.knobs.bridge = true;
    }
    const show = JSON.parse((await runCli(['migrate', 'show', 'collections', '--json', ...where()])).stdout);
    expect(show.steps.find((s: { id: string }) => s.id === 'dual-publish')).toMatchObject({ status: 'pending', lastCheck: { ok: false, output: expect.arrayContaining(['events seen: none']) } });
    const ok = await runCli(['migrate', 'check', 'collections', 'dual-publish', '--json', ...where(), ...stackArgs()], { env });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).results[0]).toMatchObject({ step: 'dual-publish', ok: true, status: 'done', message: 'collections/dual-publish passed and is now done' });
    const manual = await runCli(['migrate', 'check', 'collections', 'decommission', ...where(), ...stackArgs()], { env });
    expect(manual.code).toBe(2);
    expect(manual.stderr).toContain('step "decommission" is manual');
  });

  it('an unreachable stack fails the check (exit 1) and says which URL did not answer', async () => {
    await runCli(['migrate', 'check', 'collections', 'inventory', ...where()], { env });
    const port = await freePort();
    const r = await runCli(['migrate', 'check', 'collections', 'register-service', ...where(), '--private-url', `http://127.0.0.1:${port}`], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`✗ register-service — GET http://127.0.0.1:${port}/v1/services/collections did not answer: ECONNREFUSED`);
  });
});
