/**
 * vitest globalSetup: makes sure the suite has a Redis server.
 *
 * 1. BIFROST_TEST_REDIS_URL, when set, is used as is.
 * 2. Otherwise a Redis answering on 127.0.0.1:6379 is used; every test works
 *    under its own unique key prefix and deletes its keys afterwards.
 * 3. Otherwise `redis-server` is started on a free port (installed first with
 *    apt-get when running as root on a machine that has apt).
 * 4. Otherwise the run stops with one line saying what to install.
 */
import { spawnSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { redisAnswers, redisServerBinary, startRedisServer, type RedisProcess } from '../support/redis-server.ts';

let own: RedisProcess | undefined;

function tryAptInstall(): void {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
  if (!isRoot || !hasApt) return;
  console.log('[test setup] redis-server missing: installing the Debian package redis-server');
  spawnSync('apt-get', ['update'], { stdio: 'ignore' });
  spawnSync('apt-get', ['install', '-y', 'redis-server'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let url = process.env.BIFROST_TEST_REDIS_URL;
  if (!url && (await redisAnswers('127.0.0.1', 6379))) url = 'redis://127.0.0.1:6379';
  if (!url) {
    if (!redisServerBinary()) tryAptInstall();
    if (!redisServerBinary()) {
      throw new Error('No Redis reachable on 127.0.0.1:6379 and no redis-server binary: install Redis (Debian/Ubuntu: apt-get install redis-server) or set BIFROST_TEST_REDIS_URL');
    }
    own = await startRedisServer();
    url = own.url;
    console.log(`[test setup] started redis-server for the suite on ${url}`);
  }
  project.provide('redisUrl', url);
  return async () => {
    await own?.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
