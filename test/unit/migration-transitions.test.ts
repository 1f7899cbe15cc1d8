/** Step transitions (complete, reopen, record a check) and the pieces checks are made of. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findStep, loadCatalog, stepParams, type SquadMigration } from '../../cli/migration/catalog.ts';
import { firstDifference, maskVolatile } from '../../cli/migration/checks/route-parity.ts';
import { owningService } from '../../cli/migration/checks/cutover.ts';
import { fillTemplate } from '../../cli/migration/http-call.ts';
import { parsePrometheusText, sumOf } from '../../cli/migration/prometheus-text.ts';
import { applyChanges, emptySquadState, type SquadState } from '../../cli/migration/state-store.ts';
import { completeStep, recordCheck, reopenStep } from '../../cli/migration/step-transitions.ts';
import { FileStateStore } from '../../cli/migration/state-store-file.ts';
import { CliError } from '../../cli/output.ts';

const repo = path.resolve(import.meta.dirname, '../..');
let sq: SquadMigration;
beforeAll(async () => {
  const catalog = await loadCatalog({ migrationsDir: path.join(repo, 'migrations'), playbooksDir: path.join(repo, 'playbooks') });
  sq = catalog.squads.find((s) => s.manifest.squad === 'collections')!;
});

function apply(state: SquadState, decide: (s: SquadState) => { changes: Parameters<typeof applyChanges>[1] }): SquadState {
  return applyChanges(state, decide(state).changes);
}

describe('step transitions', () => {
  it('completes a step whose dependencies are done, once', () => {
    let s = emptySquadState('collections');
    const first = completeStep(sq, findStep(sq, 'inventory'), { by: 'ada', evidence: 'reviewed by hand' })(s);
    expect(first.changes).toHaveLength(1);
    expect(first.result).toMatchObject({ changed: true, record: { status: 'done', by: 'ada', via: 'manual' } });
    s = applyChanges(s, first.changes);
    const again = completeStep(sq, findStep(sq, 'inventory'), { by: 'bob' })(s);
    expect(again.changes).toEqual([]);
    expect(again.result.message).toMatch(/already done \(by ada at .*\); nothing changed/);
  });

  it('refuses to complete a step before its dependencies', () => {
    const decide = completeStep(sq, findStep(sq, 'route-parity'), { by: 'ada', evidence: 'compared by hand' });
    expect(() => decide(emptySquadState('collections'))).toThrow(/depends on register-service, not done yet/);
  });

  it('refuses to complete an automated step by hand without evidence, saying how to check it instead', () => {
    const ready = emptySquadState('collections');
    for (const id of ['inventory', 'register-service', 'dual-publish', 'subscribe-headers', 'route-parity', 'canary']) ready.steps[id] = { status: 'done', by: 'check', via: 'check' };
    const refuse = () => completeStep(sq, findStep(sq, 'cutover'), { by: 'ada' })(ready);
    expect(refuse).toThrow(CliError);
    expect(refuse).toThrow('step "cutover" is automated (check cutover): run `bifrost migrate check collections cutover`, or, to complete it by hand, say how it was verified with --evidence <link or text>');
    try {
      refuse();
    } catch (err) {
      expect((err as CliError).exitCode).toBe(2);
    }
    expect(completeStep(sq, findStep(sq, 'cutover'), { by: 'ada', evidence: 'https://grafana/d/rollout' })(ready).result.record).toMatchObject({ status: 'done', evidence: 'https://grafana/d/rollout' });
  });

  it('requires evidence where the playbook asks for it', () => {
    expect(() => completeStep(sq, findStep(sq, 'decommission'), { by: 'ada' })).toThrow(CliError);
    expect(() => completeStep(sq, findStep(sq, 'decommission'), { by: 'ada', evidence: 'https://x/pr/1' })).not.toThrow();
  });

  it('reopens a done step with a reason and names done dependents', () => {
    let s = emptySquadState('collections');
    s = apply(s, completeStep(sq, findStep(sq, 'inventory'), { by: 'ada', evidence: 'e' }));
    s = apply(s, completeStep(sq, findStep(sq, 'register-service'), { by: 'ada', evidence: 'e' }));
    const r = reopenStep(sq, findStep(sq, 'inventory'), { by: 'grace', reason: 'wrong prefix' })(s);
    expect(r.result).toMatchObject({ changed: true, doneDependents: ['register-service'], record: { status: 'pending', by: 'grace', reason: 'wrong prefix' } });
    s = applyChanges(s, r.changes);
    expect(reopenStep(sq, findStep(sq, 'inventory'), { by: 'grace', reason: 'again' })(s).changes).toEqual([]);
    expect(() => reopenStep(sq, findStep(sq, 'inventory'), { by: 'grace', reason: '  ' })).toThrow(/needs a reason/);
  });

  it('a passing check completes the step by "check" only when its dependencies are done', () => {
    const outcome = { ok: true, summary: 'fine', output: [] };
    const blocked = recordCheck(sq, findStep(sq, 'route-parity'), outcome, 12)(emptySquadState('collections'));
    expect(blocked.result.record.status).toBe('pending');
    expect(blocked.result.record.lastCheck).toMatchObject({ ok: true, summary: 'fine', durationMs: 12 });
    expect(blocked.result.waitingOn).toEqual(['register-service']);
    expect(blocked.changes[0]!.action).toBe('check');
    const ok = recordCheck(sq, findStep(sq, 'inventory'), outcome, 3)(emptySquadState('collections'));
    expect(ok.result.record).toMatchObject({ status: 'done', by: 'check', via: 'check' });
    expect(ok.changes[0]!.action).toBe('complete');
  });

  it('a failing check of a done step keeps it done and records the failure', () => {
    let s = apply(emptySquadState('collections'), completeStep(sq, findStep(sq, 'inventory'), { by: 'ada', evidence: 'e' }));
    const r = recordCheck(sq, findStep(sq, 'inventory'), { ok: false, summary: 'broken', output: [] }, 1)(s);
    s = applyChanges(s, r.changes);
    expect(s.steps.inventory).toMatchObject({ status: 'done', by: 'ada', lastCheck: { ok: false, summary: 'broken' } });
    expect(r.result.message).toMatch(/stays done/);
  });

  it('a pass recorded after the step was reopened mid-check does not complete it again (file store)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bifrost-transitions-'));
    const store = new FileStateStore(path.join(dir, 'state.json'));
    try {
      const step = findStep(sq, 'inventory');
      await store.update('collections', recordCheck(sq, step, { ok: true, summary: 'first', output: [] }, 1));
      // A second check starts: it sees the step done...
      const seen = (await store.read('collections')).steps.inventory!;
      expect(seen.status).toBe('done');
      // ...someone reopens it while the check runs...
      await store.update('collections', reopenStep(sq, step, { by: 'grace', reason: 'owners changed' }));
      // ...and the old pass comes back.
      const r = await store.update('collections', recordCheck(sq, step, { ok: true, summary: 'stale pass', output: [] }, 1, undefined, seen));
      expect(r.changedMeanwhile).toBe(true);
      expect(r.record.status).toBe('pending');
      expect(r.message).toMatch(/^collections\/inventory passed, but the step was reopened by grace at \S+ \(owners changed\) while the check ran: this result is recorded and does not complete it; run the check again$/);
      const after = (await store.read('collections')).steps.inventory!;
      expect(after).toMatchObject({ status: 'pending', by: 'grace', reason: 'owners changed', lastCheck: { ok: true, summary: 'stale pass' } });
      // A check that starts after the reopen completes it as usual.
      const fresh = await store.update('collections', recordCheck(sq, step, { ok: true, summary: 'fresh', output: [] }, 1, undefined, after));
      expect(fresh.record).toMatchObject({ status: 'done', by: 'check' });
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("manifest stepOptions override the playbook's check parameters", () => {
    expect(stepParams(sq, findStep(sq, 'canary'))).toMatchObject({ minPercent: 5, forSeconds: 600 });
  });
});

describe('route parity comparison', () => {
  it('masks ids, timestamps, UUIDs and named fields, then finds the first difference', () => {
    const a = { id: 'c1', name: 'x', createdAt: 1, updatedAt: 2, owner: { token: 'a', at: '2026-01-01T00:00:00Z' }, ref: '123e4567-e89b-12d3-a456-426614174000' };
    const b = { id: 'c2', name: 'x', createdAt: 5, updatedAt: 6, owner: { token: 'b', at: '2026-02-01T00:00:00Z' }, ref: '00000000-e89b-12d3-a456-426614174000' };
    expect(firstDifference(maskVolatile(a), maskVolatile(b))).toBe('$.owner.token: "a" ≠ "b"');
    expect(firstDifference(maskVolatile(a, ['owner.token']), maskVolatile(b, ['owner.token']))).toBeNull();
    expect(firstDifference([1, 2], [1, 2, 3])).toBe('$: 2 items ≠ 3 items');
    expect(firstDifference({ a: [{ n: 1 }] }, { a: [{ n: 2 }] })).toBe('$.a[0].n: 1 ≠ 2');
  });

  it('fills {id}, {nonce} and {now} in nested request specs', () => {
    expect(fillTemplate({ path: '/c/{id}', body: { n: ['{nonce}', 3], keep: '{other}' } }, { id: 'c9', nonce: 'ab', now: 'T' })).toEqual({ path: '/c/c9', body: { n: ['ab', 3], keep: '{other}' } });
  });
});

describe('routing table reading (cutover)', () => {
  it('the longest matching prefix owns a path, with the gateway\'s segment rule', () => {
    const services = [
      { name: 'sync', upstream: 'http://s', prefixes: ['/'] },
      { name: 'collections', upstream: 'http://c', prefixes: ['/collection'] },
    ];
    expect(owningService(services, '/collection')!.name).toBe('collections');
    expect(owningService(services, '/collection/c1')!.name).toBe('collections');
    expect(owningService(services, '/collections-archive')!.name).toBe('sync');
  });
});

describe('prometheus text', () => {
  it('parses samples with labels and sums over a filter', () => {
    const text = `# HELP bifrost_shim_upgrades_total x
# TYPE bifrost_shim_upgrades_total counter
bifrost_shim_upgrades_total{backend="bifrost",outcome="ok"} 90
bifrost_shim_upgrades_total{backend="bifrost",outcome="error"} 10
bifrost_shim_upgrades_total{backend="sync",outcome="error"} 7
other_metric 3 1700000000
`;
    const s = parsePrometheusText(text);
    expect(s).toHaveLength(4);
    expect(sumOf(s, 'bifrost_shim_upgrades_total', (l) => l.backend === 'bifrost')).toBe(100);
    expect(sumOf(s, 'bifrost_shim_upgrades_total', (l) => l.outcome === 'error')).toBe(17);
    expect(sumOf(s, 'other_metric')).toBe(3);
  });
});
