/** Picks the ramp store: Redis when REDIS_URL is set (where migration state is kept too), else the ramp file. */
import { DEFAULT_RAMP_FILE, FileRampStore } from './ramp-store-file.ts';
import { DEFAULT_ROLLOUT_PREFIX, RedisRampStore } from './ramp-store-redis.ts';
import type { RampStore } from './ramp-store.ts';

export interface RampStoreChoice {
  rampFile?: string;
  rampPrefix?: string;
  env?: NodeJS.ProcessEnv;
}

export function openRampStore(choice: RampStoreChoice = {}): RampStore {
  const env = choice.env ?? process.env;
  if (env.REDIS_URL) return new RedisRampStore(env.REDIS_URL, choice.rampPrefix ?? env.BIFROST_ROLLOUT_PREFIX ?? DEFAULT_ROLLOUT_PREFIX);
  return new FileRampStore(choice.rampFile ?? env.BIFROST_RAMP_FILE ?? DEFAULT_RAMP_FILE);
}
