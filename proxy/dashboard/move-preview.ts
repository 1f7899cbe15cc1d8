/**
 * "If I set the rollout to X %, how many live connections move?" — answered
 * before the operator confirms, from the live connections the shim proxies.
 *
 * In flags-file mode the answer is exact: the flag's salt is known, so each
 * connection's decision under the new percentage is computed with the same
 * bucketing the LaunchDarkly SDK applies to the flag `flags-file.ts` writes
 * (a percentage rollout on `contextKind` user|team, `bucketBy: key`, Bifrost
 * slice first):
 *
 *   bucket = int(sha1("<flag key>.<salt>.<context key>")[0..15], 16) / 0xFFFFFFFFFFFFFFF
 *   route  = bucket < bifrostWeight / 100000 ? "bifrost" : "sync"
 *
 * A connection moves when that route differs from the backend it is on — the
 * same rule the shim's rebalancer applies. Connections that came without a
 * valid route token (no known user) are never rebalanced and never counted.
 *
 * With live LaunchDarkly (salt unknown here) the answer is an estimate stated
 * as such: raising p → q moves (q − p)/(100 − p) of the Sync connections,
 * lowering moves (p − q)/p of the Bifrost ones.
 */
import { createHash } from 'node:crypto';
import { FLAG_KEY, WEIGHT_TOTAL, type BucketBy, type Route, type RolloutState } from '../flags-file.ts';
import { migrationContext } from '../flag-source.ts';
import type { LiveConnection } from '../connections.ts';

/** 2^60 − 1: the largest value of 15 hex digits, LaunchDarkly's bucket scale. */
const BUCKET_SCALE = 0xfffffffffffffff;

export interface MovePreview {
  /** `exact` (flags file: every live connection's new decision computed) or `estimate`. */
  kind: 'exact' | 'estimate';
  fromPercent: number | null;
  toPercent: number;
  bucketBy: BucketBy;
  /** Live connections now, and how many of them carry a known user (can be moved). */
  live: number;
  movable: number;
  toBifrost: number;
  toSync: number;
  /** toBifrost + toSync. */
  moving: number;
  /** What the shim does with them: `close` moves them now at `rate`/s; `keep` waits for their own reconnect. */
  drainPolicy: string;
  rate: number;
  /** One sentence for the confirmation dialog. */
  summary: string;
}

/** LaunchDarkly's bucket (0 ≤ b < 1) of a context key for the migration flag and salt. */
export function bucketOf(salt: string, contextKey: string): number {
  const hex = createHash('sha1').update(`${FLAG_KEY}.${salt}.${contextKey}`).digest('hex').slice(0, 15);
  return parseInt(hex, 16) / BUCKET_SCALE;
}

/** The route a user of a team gets at `percent` (bucketed by `bucketBy`, with the flag's salt). */
export function routeAt(percent: number, bucketBy: BucketBy, salt: string, userId: string, teamId: string): Route {
  const ctx = migrationContext(userId, teamId);
  const key = bucketBy === 'team' ? ctx.team.key : ctx.user.key;
  const weight = Math.round(percent * (WEIGHT_TOTAL / 100));
  return bucketOf(salt, key) < weight / WEIGHT_TOTAL ? 'bifrost' : 'sync';
}

export interface PreviewInput {
  connections: readonly LiveConnection[];
  /** The rollout in force (flags-file mode), or undefined (live LaunchDarkly / no flag yet). */
  current: RolloutState | undefined;
  /** The shim's percent when known another way (estimate mode). */
  currentPercent: number | null;
  toPercent: number;
  bucketBy?: BucketBy;
  drainPolicy: string;
  rate: number;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Computes how many live connections a rollout change would move. */
export function previewMove(input: PreviewInput): MovePreview {
  const live = input.connections.length;
  const movableConns = input.connections.filter((c) => c.userId !== undefined);
  const bucketBy: BucketBy = input.bucketBy ?? input.current?.bucketBy ?? 'user';
  let toBifrost = 0;
  let toSync = 0;
  let kind: MovePreview['kind'];
  const fromPercent = input.current ? input.current.percent : input.currentPercent;
  if (input.current && input.current.salt) {
    kind = 'exact';
    for (const c of movableConns) {
      const next = routeAt(input.toPercent, bucketBy, input.current.salt, c.userId!, c.teamId ?? '');
      if (next === c.backend) continue;
      if (next === 'bifrost') toBifrost += 1;
      else toSync += 1;
    }
  } else {
    kind = 'estimate';
    const p = fromPercent ?? 0;
    const q = input.toPercent;
    const onSync = movableConns.filter((c) => c.backend === 'sync').length;
    const onBifrost = movableConns.length - onSync;
    if (q > p) toBifrost = Math.round(p >= 100 ? 0 : (onSync * (q - p)) / (100 - p));
    else if (q < p) toSync = Math.round(p <= 0 ? 0 : (onBifrost * (p - q)) / p);
  }
  const moving = toBifrost + toSync;
  const how =
    input.drainPolicy === 'keep'
      ? 'drain policy "keep": they move when they reconnect on their own'
      : `closed at up to ${input.rate}/s so they reconnect to their new backend`;
  const what = kind === 'exact' ? '' : 'about ';
  const summary =
    moving === 0
      ? `No live connection would move (${plural(live, 'live connection', 'live connections')}).`
      : `${what}${plural(moving, 'live connection', 'live connections')} of ${live} would move` +
        ` (${toBifrost} Sync → Bifrost, ${toSync} Bifrost → Sync), ${how}.` +
        (kind === 'estimate' ? ' Estimate: the flag lives in LaunchDarkly, so per-user decisions cannot be computed here.' : '');
  return {
    kind,
    fromPercent,
    toPercent: input.toPercent,
    bucketBy,
    live,
    movable: movableConns.length,
    toBifrost,
    toSync,
    moving,
    drainPolicy: input.drainPolicy,
    rate: input.rate,
    summary,
  };
}
