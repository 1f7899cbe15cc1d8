/**
 * `bifrost rollout status` text (cli/rollout/rollout-status.ts renderStatus):
 * a shim whose flags never loaded routes everyone to Sync whatever the
 * percentage says, and the status says so next to the shim line.
 */
import pc from 'picocolors';
import { describe, expect, it } from 'vitest';
import { renderStatus, type RolloutStatus } from '../../cli/rollout/rollout-status.ts';
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
