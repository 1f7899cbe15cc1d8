/**
 * `bifrost rollout status` text (cli/rollout/rollout-status.ts renderStatus):
 * a shim whose flags never loaded routes everyone to Sync whatever the
 * percentage says, and the status says so next to the shim line. And the
 * fleet view of several replicas (mergeReplicas), pure logic on snapshots.
 */
import pc from 'picocolors';
import { describe, expect, it } from 'vitest';
import { mergeReplicas, renderStatus, type RolloutStatus, type ShimView } from '../../cli/rollout/rollout-status.ts';
import type { ShimRolloutSnapshot } from '../../cli/rollout/shim-admin-client.ts';

const colors = pc.createColors(false);

function snapshot(over: Partial<ShimRolloutSnapshot> = {}): ShimRolloutSnapshot {
  return {
    source: 'launchdarkly',
    flagsFile: null,
    mode: 'proxied',
    percent: 25,
    bucketBy: 'user',
    version: 7,
    decisions: { sync: 3, bifrost: 0, byReason: {} },
    connections: { sync: 3, bifrost: 0, websocket: 3, polling: 0, nodes: [] },
    drain: { policy: 'close', rate: 50, queued: 0, closed: 0 },
    flagReloads: { ok: 0, errors: 0, lastError: null },
    ...over,
  };
}

function status(snap: ShimRolloutSnapshot): RolloutStatus {
  return {
    flag: { target: 'launchdarkly', description: 'LaunchDarkly flag bifrost-sync-migration', overrideWarning: null, percent: 25, bucketBy: 'user', version: 7, on: true, overrides: [] },
    shim: { url: 'http://127.0.0.1:9090', reachable: true, snapshot: snap, upgrades: null },
    ramp: null,
  };
}

describe('rollout status text', () => {
  it('says when the shim has not loaded its flags, with the reason', () => {
    const failed = snapshot({ flagSource: { state: 'failed', ready: false, error: 'Authentication failed. Double check your SDK key.', since: new Date().toISOString() } });
    const text = renderStatus(status(failed), colors, false);
    expect(text).toContain('flags NOT LOADED (failed: Authentication failed. Double check your SDK key.): every user is routed to Sync whatever the percentage says');
  });

  it('says nothing of the kind when the flags are loaded, or the shim is too old to say', () => {
    const ready = snapshot({ flagSource: { state: 'ready', ready: true, error: null, since: new Date().toISOString() } });
    expect(renderStatus(status(ready), colors, false)).not.toContain('NOT LOADED');
    expect(renderStatus(status(snapshot()), colors, false)).not.toContain('NOT LOADED');
  });
});

describe('several shim replicas as one fleet', () => {
  const node = (id: string, connections: number, over: Partial<ShimRolloutSnapshot['connections']['nodes'][number]> = {}) => ({ id, url: `http://${id}:8080`, connections, loadFactor: 0.2, draining: false, reachable: true, ...over });
  const up = (url: string, snap: ShimRolloutSnapshot, okUpgrades: number | null): ShimView => ({
    url,
    reachable: true,
    snapshot: snap,
    upgrades: okUpgrades === null ? null : { sync: { total: 0, failed: 0, byOutcome: {} }, bifrost: { total: okUpgrades + 1, failed: 1, byOutcome: { ok: okUpgrades, error: 1 } } },
  });
  const a = snapshot({ percent: 25, decisions: { sync: 3, bifrost: 1, byReason: { flag: 4 } }, connections: { sync: 3, bifrost: 1, websocket: 4, polling: 0, nodes: [node('gw-1', 1)] } });
  const b = snapshot({
    percent: 25,
    decisions: { sync: 5, bifrost: 2, byReason: { flag: 6, fallback: 1 } },
    connections: { sync: 5, bifrost: 2, websocket: 6, polling: 1, nodes: [node('gw-1', 1, { draining: true }), node('gw-2', 1, { reachable: false })] },
  });

  it('sums counts, merges nodes by id (draining or unreachable when any replica says so), and sums upgrades only when every replica gave them', () => {
    const m = mergeReplicas([up('http://s1:9090', a, 5), up('http://s2:9090', b, 7)]);
    expect(m.reachable).toBe(true);
    if (!m.reachable) return;
    expect(m.url).toBe('http://s1:9090, http://s2:9090');
    expect(m.snapshot.decisions).toEqual({ sync: 8, bifrost: 3, byReason: { flag: 10, fallback: 1 } });
    expect(m.snapshot.connections).toMatchObject({ sync: 8, bifrost: 3, websocket: 10, polling: 1 });
    expect(m.snapshot.connections.nodes.map((n) => [n.id, n.connections, n.draining, n.reachable])).toEqual([
      ['gw-1', 2, true, true],
      ['gw-2', 1, false, false],
    ]);
    expect(m.upgrades?.bifrost).toEqual({ total: 14, failed: 2, byOutcome: { ok: 12, error: 2 } });
    // The first replica's snapshot is not changed by the merge.
    expect(a.connections.nodes[0]!.connections).toBe(1);
    // A replica whose /metrics could not be read: no total at all rather than a partial one.
    expect(mergeReplicas([up('http://s1:9090', a, 5), up('http://s2:9090', b, null)])).toMatchObject({ reachable: true, upgrades: null });
  });

  it('counts only the replicas that answered; none answering is unreachable with every reason', () => {
    const m = mergeReplicas([{ url: 'http://s1:9090', reachable: false, error: 'refused' }, up('http://s2:9090', b, 7)]);
    expect(m.reachable && m.snapshot.connections.sync).toBe(5);
    const none = mergeReplicas([
      { url: 'http://s1:9090', reachable: false, error: 'refused' },
      { url: 'http://s2:9090', reachable: false, error: 'timed out' },
    ]);
    expect(none).toEqual({ url: 'http://s1:9090, http://s2:9090', reachable: false, error: 'refused; timed out' });
  });

  it('the text names a replica that applies another percentage, and one that does not answer', () => {
    const behind = snapshot({ percent: 10 });
    const replicas: ShimView[] = [up('http://s1:9090', a, 5), up('http://s2:9090', behind, 1), { url: 'http://s3:9090', reachable: false, error: 'shim admin API unreachable at http://s3:9090 (ECONNREFUSED)' }];
    const text = renderStatus({ ...status(a), shim: mergeReplicas(replicas), replicas }, colors, false);
    expect(text).toContain('http://s2:9090 still applies 10% (reload pending or another flags file)');
    expect(text).toContain('3 replicas, 1 not answering; figures below are their sums');
    expect(text).toMatch(/http:\/\/s3:9090 .*shim admin API unreachable at http:\/\/s3:9090 \(ECONNREFUSED\)/);
  });
});
