/**
 * The Redis ramp store: one key, `<prefix>ramp` (prefix BIFROST_ROLLOUT_PREFIX,
 * default `bifrost:rollout:`), holding the JSON document. A change is written
 * by a Lua script that compares the stored document's `version` with the one
 * the caller read (compare-and-set on a shared connection); a lost race reads
 * again and re-decides.
 */
import { Redis } from 'ioredis';
import { CliError, EXIT_USAGE } from '../output.ts';
import { rampDocProblem, type RampDoc } from './ramp-state.ts';
import type { RampDecision, RampStore } from './ramp-store.ts';

export const DEFAULT_ROLLOUT_PREFIX = 'bifrost:rollout:';

const COMPARE_AND_SET = `
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if not ok then return -1 end
  v = tonumber(doc['version']) or 0
end
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`;

type RedisWithScript = Redis & { bifrostRampCas(key: string, expected: string, doc: string): Promise<number> };

function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

export class RedisRampStore implements RampStore {
  readonly description: string;
  readonly key: string;
  private readonly redis: RedisWithScript;
  private connected?: Promise<void>;

  constructor(
    readonly url: string,
    prefix: string = DEFAULT_ROLLOUT_PREFIX,
    private readonly maxAttempts = 100,
  ) {
    this.key = `${prefix}ramp`;
    this.description = `redis ${redactUrl(url)} (key ${this.key})`;
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, retryStrategy: (times) => (times > 3 ? null : 100 * times) }) as RedisWithScript;
    this.redis.on('error', () => {}); // surfaced by the failing command
    this.redis.defineCommand('bifrostRampCas', { numberOfKeys: 1, lua: COMPARE_AND_SET });
  }

  private ready(): Promise<void> {
    this.connected ??= this.redis.connect().catch((err: Error) => {
      throw new CliError(`cannot reach Redis at ${redactUrl(this.url)} (REDIS_URL): ${err.message}`, EXIT_USAGE);
    });
    return this.connected;
  }

  async read(): Promise<RampDoc | null> {
    await this.ready();
    const raw = await this.redis.get(this.key);
    if (raw === null) return null;
    let doc: unknown;
    try {
      doc = JSON.parse(raw);
    } catch {
      doc = undefined;
    }
    const problem = doc === undefined ? 'not JSON' : rampDocProblem(doc);
    if (problem) throw new CliError(`Redis key ${this.key} is corrupt (${problem}); it was left untouched — delete it to start over`, EXIT_USAGE);
    return doc as RampDoc;
  }

  async update<T>(decide: (current: RampDoc | null) => RampDecision<T>): Promise<T> {
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const current = await this.read();
      const { next, result } = decide(current);
      if (!next) return result;
      const expected = current?.version ?? 0;
      const applied = await this.redis.bifrostRampCas(this.key, String(expected), JSON.stringify({ ...next, version: expected + 1 }));
      if (applied === 1) return result;
      if (applied === -1) throw new CliError(`Redis key ${this.key} is corrupt (not JSON); it was left untouched`, EXIT_USAGE);
      await new Promise((r) => setTimeout(r, Math.random() * 10 * Math.min(attempt, 10)));
    }
    throw new CliError(`could not update ${this.key}: too many concurrent writers; retry`, EXIT_USAGE);
  }

  async close(): Promise<void> {
    if (this.connected) await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }
}
