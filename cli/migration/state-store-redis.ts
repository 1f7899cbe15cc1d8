/**
 * The Redis state store. Layout under a key prefix (default
 * `bifrost:migrations:`, `BIFROST_STATE_PREFIX`):
 *   `<prefix>squad:<squad>`  hash: step id → JSON step record, `_version` → n
 *   `<prefix>audit`          stream: one entry per change (squad, step, action,
 *                            by, at, entry = the full JSON audit entry)
 * A change set is applied by one Lua script that compares `_version` with the
 * version the caller read (compare-and-set): the hash update, the version bump
 * and the audit entries land together or not at all, on a shared connection
 * (unlike WATCH, which belongs to one connection). A lost race is retried.
 */
import { Redis } from 'ioredis';
import { CliError, EXIT_USAGE } from '../output.ts';
import { redactUrl } from '../../gateway/redact-url.ts';
import {
  auditEntries,
  emptySquadState,
  stepRecordProblem,
  type AuditEntry,
  type Decision,
  type SquadState,
  type StateStore,
  type StepRecord,
} from './state-store.ts';

export const DEFAULT_STATE_PREFIX = 'bifrost:migrations:';

const APPLY_CHANGES = `
local current = redis.call('HGET', KEYS[1], '_version')
if not current then current = '0' end
if current ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local b = 3 + i * 7
  redis.call('HSET', KEYS[1], ARGV[b], ARGV[b + 1])
  redis.call('XADD', KEYS[2], '*', 'squad', ARGV[3 + n * 7], 'step', ARGV[b], 'action', ARGV[b + 2], 'by', ARGV[b + 3], 'at', ARGV[b + 4], 'entry', ARGV[b + 5])
end
redis.call('HINCRBY', KEYS[1], '_version', 1)
return 1
`;

type RedisWithScript = Redis & {
  bifrostApplyStepChanges(hash: string, stream: string, ...args: string[]): Promise<number>;
};

export interface RedisStateStoreOptions {
  prefix?: string;
  /** Give up after this many lost compare-and-set races (default 200). */
  maxAttempts?: number;
}

export class RedisStateStore implements StateStore {
  readonly description: string;
  private readonly redis: RedisWithScript;
  private readonly prefix: string;
  private readonly maxAttempts: number;
  private connected?: Promise<void>;

  constructor(
    readonly url: string,
    opts: RedisStateStoreOptions = {},
  ) {
    this.prefix = opts.prefix ?? DEFAULT_STATE_PREFIX;
    this.maxAttempts = opts.maxAttempts ?? 200;
    this.description = `redis ${redactUrl(url)} (prefix ${this.prefix})`;
    this.redis = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 2,
      retryStrategy: (times) => (times > 3 ? null : 100 * times),
    }) as RedisWithScript;
    this.redis.on('error', () => {}); // surfaced by the failing command instead
    this.redis.defineCommand('bifrostApplyStepChanges', { numberOfKeys: 2, lua: APPLY_CHANGES });
  }

  private squadKey(squad: string): string {
    return `${this.prefix}squad:${squad}`;
  }

  private get auditKey(): string {
    return `${this.prefix}audit`;
  }

  private async ready(): Promise<void> {
    this.connected ??= this.redis.connect().catch((err: Error) => {
      throw new CliError(`cannot reach Redis at ${redactUrl(this.url)} (REDIS_URL): ${err.message}`, EXIT_USAGE);
    });
    return this.connected;
  }

  async read(squad: string): Promise<SquadState> {
    await this.ready();
    const h = await this.redis.hgetall(this.squadKey(squad));
    const state = emptySquadState(squad);
    for (const [field, value] of Object.entries(h)) {
      if (field === '_version') {
        state.version = Number(value);
        continue;
      }
      let rec: unknown;
      try {
        rec = JSON.parse(value);
      } catch {
        rec = undefined;
      }
      const problem = rec === undefined ? 'not JSON' : stepRecordProblem(rec);
      if (problem) throw new CliError(`Redis key ${this.squadKey(squad)} field "${field}" is corrupt (${problem}); it was left untouched`, EXIT_USAGE);
      state.steps[field] = rec as StepRecord;
    }
    return state;
  }

  async update<T>(squad: string, decide: (current: SquadState) => Decision<T>): Promise<T> {
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const current = await this.read(squad);
      const { changes, result } = decide(current);
      if (changes.length === 0) return result;
      const entries = auditEntries(squad, current, changes, new Date().toISOString());
      const args: string[] = [String(current.version), String(entries.length)];
      for (const e of entries) args.push(e.step, JSON.stringify(e.next), e.action, e.by, e.at, JSON.stringify(e), '');
      args.push(squad);
      const applied = await this.redis.bifrostApplyStepChanges(this.squadKey(squad), this.auditKey, ...args);
      if (applied === 1) return result;
      // Someone else changed the squad since we read it: back off a little and decide again.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, attempt * 5)));
    }
    throw new CliError(`could not apply the change to squad "${squad}" after ${this.maxAttempts} attempts: too many concurrent writers`, EXIT_USAGE);
  }

  async audit(opts: { squad?: string; limit?: number } = {}): Promise<AuditEntry[]> {
    await this.ready();
    const raw = await this.redis.xrange(this.auditKey, '-', '+');
    const out: AuditEntry[] = [];
    for (const [id, fields] of raw) {
      const i = fields.indexOf('entry');
      if (i < 0) continue;
      let e: AuditEntry;
      try {
        e = JSON.parse(fields[i + 1]!) as AuditEntry;
      } catch {
        e = undefined as unknown as AuditEntry;
      }
      if (!e || typeof e !== 'object' || typeof e.squad !== 'string' || typeof e.step !== 'string' || !e.next || typeof e.next !== 'object') {
        throw new CliError(`Redis stream ${this.auditKey} entry ${id} is corrupt (its "entry" field is not an audit entry in JSON); it was left untouched`, EXIT_USAGE);
      }
      if (!opts.squad || e.squad === opts.squad) out.push(e);
    }
    return opts.limit ? out.slice(-opts.limit) : out;
  }

  async close(): Promise<void> {
    if (this.redis.status === 'end') return;
    if (this.redis.status === 'wait') return this.redis.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

