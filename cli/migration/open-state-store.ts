/** Picks the state store: Redis when REDIS_URL is set, else the state file. */
import { FileStateStore } from './state-store-file.ts';
import { DEFAULT_STATE_PREFIX, RedisStateStore } from './state-store-redis.ts';
import { DEFAULT_STATE_FILE, type StateStore } from './state-store.ts';

export { DEFAULT_STATE_FILE };

export interface StateStoreChoice {
  stateFile?: string;
  statePrefix?: string;
  env?: NodeJS.ProcessEnv;
}

export function openStateStore(choice: StateStoreChoice = {}): StateStore {
  const env = choice.env ?? process.env;
  const url = env.REDIS_URL;
  if (url) return new RedisStateStore(url, { prefix: choice.statePrefix ?? env.BIFROST_STATE_PREFIX ?? DEFAULT_STATE_PREFIX });
  return new FileStateStore(choice.stateFile ?? DEFAULT_STATE_FILE);
}
