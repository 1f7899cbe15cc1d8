/**
 * Where the ramp's state lives: one document, changed only through
 * `update(decide)`, which hands `decide` the current document (or null) and
 * writes what it returns atomically with respect to every other process.
 * `decide` must be pure: a store may call it again after a concurrent write.
 * Two implementations side by side: `ramp-store-file.ts` (`.bifrost/ramp.json`,
 * lock + atomic rename) and `ramp-store-redis.ts` (one key, Lua
 * compare-and-set); `open-ramp-store.ts` picks Redis when REDIS_URL is set.
 */
import type { RampDoc } from './ramp-state.ts';

export interface RampDecision<T> {
  /** The new document; undefined = no change. The store sets `version`. */
  next?: RampDoc;
  result: T;
}

export interface RampStore {
  /** For messages: `file .bifrost/ramp.json`, `redis … (key …)`. */
  readonly description: string;
  read(): Promise<RampDoc | null>;
  update<T>(decide: (current: RampDoc | null) => RampDecision<T>): Promise<T>;
  close(): Promise<void>;
}
