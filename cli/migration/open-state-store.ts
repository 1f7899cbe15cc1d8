/**
 * Picks the state store: Redis when REDIS_URL is set, else the state file.
 * REDIS_SENTINELS / REDIS_CLUSTER_NODES (which the gateway understands) are
 * not used for migration state: set without REDIS_URL, they draw a warning.
 */
import { FileStateStore } from './state-store-file.ts';
import { DEFAULT_STATE_PREFIX, RedisStateStore } from './state-store-redis.ts';
import { DEFAULT_STATE_FILE, type StateStore } from './state-store.ts';

export { DEFAULT_STATE_FILE };

export interface StateStoreChoice {
  stateFile?: string;
  statePrefix?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * The warning for a Redis Sentinel or Cluster configuration the migration
 * state does not use (it speaks to one Redis, REDIS_URL), or null.
 */
export function ignoredRedisWarning(env: NodeJS.ProcessEnv): string | null {
  if (env.REDIS_URL) return null;
  const set = ['REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'].filter((k) => env[k]);
  if (set.length === 0) return null;
  return `${set.join(' and ')} ${set.length > 1 ? 'are' : 'is'} set but REDIS_URL is not: migration state does not use Redis Sentinel or Cluster, it is kept in the state file; set REDIS_URL (e.g. the primary) to share it in Redis`;
}

export function openStateStore(choice: StateStoreChoice = {}, warn: (line: string) => void = (l) => process.stderr.write(`warning: ${l}\n`)): StateStore {
  const env = choice.env ?? process.env;
  const url = env.REDIS_URL;
  if (url) return new RedisStateStore(url, { prefix: choice.statePrefix ?? env.BIFROST_STATE_PREFIX ?? DEFAULT_STATE_PREFIX });
  const ignored = ignoredRedisWarning(env);
  if (ignored) warn(ignored);
  return new FileStateStore(choice.stateFile ?? DEFAULT_STATE_FILE);
}
