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
import { TransientError } from './retry.ts';
import { redactUrl } from '../../gateway/redact-url.ts';
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

export class RedisRampStore implements RampStore {
  readonly description: string;
  readonly key: string;
  private readonly redis: RedisWithScript;

  constructor(
    readonly url: string,
    prefix: string = DEFAULT_ROLLOUT_PREFIX,
    private readonly maxAttempts = 100,
  ) {
    this.key = `${prefix}ramp`;
    this.description = `redis ${redactUrl(url)} (key ${this.key})`;
    // ioredis's default reconnect strategy (a capped backoff, forever): a blip
    // longer than a few hundred ms must not leave this long-lived connection
    // dead for the rest of a ramp. A command waits through at most
    // `maxRetriesPerRequest` reconnects, then fails (TransientError), and the
    // caller retries it with its own budget (retry.ts).
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 }) as RedisWithScript;
    this.redis.on('error', () => {}); // surfaced by the failing command
    this.redis.defineCommand('bifrostRampCas', { numberOfKeys: 1, lua: COMPARE_AND_SET });
  }

  /** Connects on first use; after that ioredis reconnects by itself and commands wait in its offline queue. */
  private async ready(): Promise<void> {
    if (this.redis.status !== 'wait') return;
    await this.redis.connect().catch((err: Error) => {
      throw this.unreachable(err);
    });
  }

  private unreachable(err: unknown): TransientError {
    return new TransientError(`cannot reach Redis at ${redactUrl(this.url)} (REDIS_URL): ${(err as Error).message}`);
  }

  /** Runs a Redis command; a connection failure becomes a TransientError (one clear line, retried by callers). */
  private async command<T>(run: () => Promise<T>): Promise<T> {
    await this.ready();
    try {
      return await run();
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw this.unreachable(err);
    }
  }

  async read(): Promise<RampDoc | null> {
    const raw = await this.command(() => this.redis.get(this.key));
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
      const applied = await this.command(() => this.redis.bifrostRampCas(this.key, String(expected), JSON.stringify({ ...next, version: expected + 1 })));
      if (applied === 1) return result;
      if (applied === -1) throw new CliError(`Redis key ${this.key} is corrupt (not JSON); it was left untouched`, EXIT_USAGE);
      await new Promise((r) => setTimeout(r, Math.random() * 10 * Math.min(attempt, 10)));
    }
    throw new TransientError(`could not update ${this.key}: too many concurrent writers; retry`);
  }

  async close(): Promise<void> {
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }
}
