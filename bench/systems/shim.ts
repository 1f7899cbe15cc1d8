/**
 * The Bifrost shim as production runs it (`bifrost shim`), with a flags file
 * that sends every user to "bifrost" (so each upgrade verifies its route token
 * and evaluates the flag) and the given URLs as its Bifrost nodes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { writeRollout } from '../../proxy/flags-file.ts';
import { resolveShimOptions } from '../../proxy/shim.ts';
import { ROOT, spawnReady, type Child } from '../harness/processes.ts';
import { freePort } from '../harness/redis.ts';
import { BENCH_TOKEN_SECRET } from './bifrost.ts';

export interface RunningShim {
  url: string;
  adminUrl: string;
  /** Secret of `bf_route` tokens, derived from the token secret as the shim does. */
  routeSecret: string;
  child: Child;
  stop(): Promise<void>;
}

export async function startShimProcess(o: { bifrostUrls: string[]; syncUrl: string; fallback: 'sync' | 'error'; nodeArgs?: string[] }): Promise<RunningShim> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bifrost-bench-shim-'));
  const flagsFile = path.join(dir, 'flags.json');
  await writeRollout(flagsFile, { percent: 100, bucketBy: 'user' });
  const port = await freePort();
  const adminPort = await freePort();
  const { child, ready } = await spawnReady<{ url: string; adminUrl: string }>(
    'shim',
    process.execPath,
    [
      ...(o.nodeArgs ?? []),
      path.join(ROOT, 'bin/bifrost.mjs'),
      'shim',
      '--godserver', o.syncUrl,
      '--sync', o.syncUrl,
      '--bifrost', o.bifrostUrls.join(','),
      '--host', '127.0.0.1',
      '--port', String(port),
      '--admin-port', String(adminPort),
      '--flags-file', flagsFile,
      '--fallback', o.fallback,
      '--shutdown-window', '0',
      '--json',
    ],
    {
      env: { ...process.env, BIFROST_TOKEN_SECRET: BENCH_TOKEN_SECRET, BIFROST_ADMIN_TOKEN: 'bench-admin-token', LOG_LEVEL: 'warn' },
      isReady: (obj) => typeof obj.url === 'string',
    },
  );
  // Its flags file goes with it, however it stops.
  child.proc.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  // The shim's own derivation of the route secret from the token secret.
  const { routeSecret } = resolveShimOptions({ port: 0, adminPort: 0, godserverUrl: o.syncUrl, syncUrl: o.syncUrl, bifrostUrls: o.bifrostUrls, tokenSecret: BENCH_TOKEN_SECRET, adminToken: 'bench-admin-token', log: pino({ level: 'silent' }) });
  return { url: ready.url, adminUrl: ready.adminUrl, routeSecret, child, stop: () => child.stop(3000) };
}
