/**
 * Two real Sails reference apps for shim tests: "sync" and a stand-in for
 * Bifrost. Each holds a collection `marker` named after its role, so a test
 * can tell which backend a client reached by reading it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { signAccessToken } from '../../gateway/token.ts';
import { startSyncReference, type SyncReference } from '../../legacy/sync-app.ts';
import { silentLogger } from './silent-logger.ts';

export const MARKER_SYNC = 'sync';
export const MARKER_STANDIN = 'bifrost-standin';

/** Creates the `marker` collection on an app. */
export async function seedMarker(app: SyncReference, tokenSecret: string, name: string): Promise<void> {
  const token = await signAccessToken(tokenSecret, { userId: 'seeder', teamId: 'seeders' });
  const res = await fetch(`${app.url}/collection`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-access-token': token },
    body: JSON.stringify({ id: 'marker', name, workspace: 'w', data: {} }),
  });
  expect(res.status).toBe(200);
}

export interface MarkedSyncPair {
  sync: SyncReference;
  standin: SyncReference;
  /** A fresh temporary directory (for the tests' flags files), removed by close(). */
  dir: string;
  close(): Promise<void>;
}

/** Starts both apps on random ports and marks them. */
export async function startMarkedSyncPair(label: string, tokenSecret: string): Promise<MarkedSyncPair> {
  const start = () => startSyncReference({ port: 0, tokenSecret, log: silentLogger, bifrostPrivateUrl: undefined, env: {} });
  const [sync, standin] = await Promise.all([start(), start()]);
  await seedMarker(sync, tokenSecret, MARKER_SYNC);
  await seedMarker(standin, tokenSecret, MARKER_STANDIN);
  const dir = await mkdtemp(join(tmpdir(), `bifrost-${label}-`));
  return {
    sync,
    standin,
    dir,
    async close() {
      await Promise.all([sync.close(), standin.close()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
