/**
 * A shim for tests: random ports, silent, its flags file a new file in `dir`
 * with the rollout given (a fixed salt makes a user population's split
 * reproducible; without one, `writeRollout` picks a random salt as production does).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FLAG_KEY, buildFlag, writeRollout } from '../../proxy/flags-file.ts';
import { startShim, type ShimHandle, type ShimOptions } from '../../proxy/shim.ts';
import { silentLogger } from './silent-logger.ts';

export interface TestShimSetup {
  dir: string;
  syncUrl: string;
  bifrostUrls: string[];
  tokenSecret: string;
  adminToken: string;
}

let seq = 0;

export async function startTestShim(
  setup: TestShimSetup,
  rollout: { percent: number; bucketBy?: 'user' | 'team'; salt?: string },
  opts: Partial<ShimOptions> = {},
): Promise<{ shim: ShimHandle; flagsFile: string }> {
  const flagsFile = join(setup.dir, `flags-${process.pid}-${seq++}.json`);
  const bucketBy = rollout.bucketBy ?? 'user';
  if (rollout.salt) await writeFile(flagsFile, JSON.stringify({ flags: { [FLAG_KEY]: buildFlag({ percent: rollout.percent, bucketBy }, rollout.salt, 1) } }));
  else await writeRollout(flagsFile, { percent: rollout.percent, bucketBy });
  const shim = await startShim({
    port: 0,
    adminPort: 0,
    host: '127.0.0.1',
    godserverUrl: setup.syncUrl,
    syncUrl: setup.syncUrl,
    bifrostUrls: setup.bifrostUrls,
    flagsFile,
    tokenSecret: setup.tokenSecret,
    adminToken: setup.adminToken,
    log: silentLogger,
    ...opts,
  });
  return { shim, flagsFile };
}
