/**
 * The local flags file: the `bifrost-sync-migration` flag in exactly the JSON
 * format the LaunchDarkly server SDK's `FileDataSource` reads
 * (`{"flags": {"<key>": <full flag JSON>}}`), so a stock LaunchDarkly SDK can be
 * pointed at the same file.
 *
 * This module is standalone (node:fs and node:crypto only): the shim reads the
 * file through it, and the CLI's `bifrost rollout set` writes through it.
 *
 * The flag:
 * - variations `["sync", "bifrost"]` (index 0 = sync, 1 = bifrost), `on: true`,
 *   `offVariation: 0` (flag off = everyone on Sync);
 * - fallthrough percentage `rollout` with weights out of 100000. The bifrost
 *   slice is listed FIRST so a context goes to Bifrost when its bucket is below
 *   the bifrost weight. Together with a salt that never changes between writes,
 *   raising the percentage only adds users (those whose bucket falls between the
 *   old and new weight); nobody already moved is reshuffled. Lowering it moves
 *   back exactly the most recently added ones.
 * - `rollout.contextKind` is `user` or `team` and `rollout.bucketBy` is `key`:
 *   evaluated for the multi-context `{user: {key}, team: {key}}`, the SDK hashes
 *   `<flag key>.<salt>.<user key or team key>`, so with `team` every member of a
 *   team lands in the same bucket.
 *
 * Writes are atomic: a temp file in the same directory, fsync, then rename.
 */
import lockfile from 'proper-lockfile';
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

export const FLAG_KEY = 'bifrost-sync-migration';
export const DEFAULT_FLAGS_FILE = '.bifrost/flags.json';
/** Weights are out of this total, as LaunchDarkly does. */
export const WEIGHT_TOTAL = 100_000;

export type Route = 'sync' | 'bifrost';
export type BucketBy = 'user' | 'team';
export const VARIATIONS: readonly Route[] = ['sync', 'bifrost'];
const SYNC_INDEX = 0;
const BIFROST_INDEX = 1;

/** What the rollout is, in the terms operators use. */
export interface Rollout {
  /** Share of contexts on Bifrost, 0..100 (up to three decimals: weights are out of 100000). */
  percent: number;
  bucketBy: BucketBy;
}

/** The rollout plus what identifies the flag version on disk. */
export interface RolloutState extends Rollout {
  salt: string;
  version: number;
  on: boolean;
}

/** The subset of LaunchDarkly's flag JSON this module writes (it is a valid full flag). */
export interface FlagJson {
  key: string;
  version: number;
  on: boolean;
  variations: unknown[];
  offVariation?: number;
  fallthrough: {
    variation?: number;
    rollout?: {
      contextKind?: string;
      bucketBy?: string;
      variations: { variation: number; weight: number }[];
      seed?: number;
      kind?: string;
    };
  };
  salt?: string;
  targets?: unknown[];
  contextTargets?: unknown[];
  rules?: unknown[];
  prerequisites?: unknown[];
  clientSide?: boolean;
  trackEvents?: boolean;
  trackEventsFallthrough?: boolean;
  [extra: string]: unknown;
}

export interface FlagsFileJson {
  flags?: Record<string, FlagJson>;
  flagValues?: Record<string, unknown>;
  segments?: Record<string, unknown>;
  [extra: string]: unknown;
}

/** A flags file that cannot be used; the message says what is wrong and where. */
export class FlagsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlagsFileError';
  }
}

/** The flags file path from the environment (`BIFROST_FLAGS_FILE`) or the default. */
export function flagsFilePathFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.BIFROST_FLAGS_FILE || DEFAULT_FLAGS_FILE;
}

/** Throws a FlagsFileError unless `percent` is a number in 0..100 with at most 3 decimals. */
export function validatePercent(percent: unknown): number {
  if (typeof percent !== 'number' || !Number.isFinite(percent)) {
    throw new FlagsFileError(`percent must be a number from 0 to 100, got ${JSON.stringify(percent)}`);
  }
  if (percent < 0 || percent > 100) {
    throw new FlagsFileError(`percent must be from 0 to 100, got ${percent}`);
  }
  const weight = percent * (WEIGHT_TOTAL / 100);
  if (Math.abs(weight - Math.round(weight)) > 1e-6) {
    throw new FlagsFileError(`percent ${percent} is finer than LaunchDarkly weights allow (at most 3 decimals)`);
  }
  return percent;
}

/** Throws a FlagsFileError unless `bucketBy` is `user` or `team`. */
export function validateBucketBy(bucketBy: unknown): BucketBy {
  if (bucketBy !== 'user' && bucketBy !== 'team') {
    throw new FlagsFileError(`bucketBy must be "user" or "team", got ${JSON.stringify(bucketBy)}`);
  }
  return bucketBy;
}

/** A new random salt (hex). Generated once per flags file and then kept. */
export function newSalt(): string {
  return randomBytes(16).toString('hex');
}

/** Builds the full LaunchDarkly flag JSON for a rollout. */
export function buildFlag(rollout: Rollout, salt: string, version: number): FlagJson {
  validatePercent(rollout.percent);
  validateBucketBy(rollout.bucketBy);
  const bifrostWeight = Math.round(rollout.percent * (WEIGHT_TOTAL / 100));
  return {
    key: FLAG_KEY,
    version,
    on: true,
    variations: [...VARIATIONS],
    offVariation: SYNC_INDEX,
    fallthrough: {
      rollout: {
        contextKind: rollout.bucketBy,
        bucketBy: 'key',
        // Bifrost first: bucket < bifrost weight → bifrost (see the module comment).
        variations: [
          { variation: BIFROST_INDEX, weight: bifrostWeight },
          { variation: SYNC_INDEX, weight: WEIGHT_TOTAL - bifrostWeight },
        ],
      },
    },
    salt,
    targets: [],
    contextTargets: [],
    rules: [],
    prerequisites: [],
    clientSide: false,
    trackEvents: false,
    trackEventsFallthrough: false,
  };
}

/**
 * Checks a parsed flags file the way FileDataSource would need it: an object,
 * `flags` an object of flag objects whose `key` matches their name, each with
 * `on`, `variations` and a `fallthrough` that is a variation or a rollout, and
 * `rules`, `targets`, `contextTargets`, `prerequisites` (when present) arrays of
 * objects; `segments` objects with rules of the same shape.
 * Returns the value typed; throws FlagsFileError with the path of the problem.
 */
export function validateFlagsFile(value: unknown): FlagsFileJson {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new FlagsFileError('the flags file must hold a JSON object like {"flags": {...}}');
  }
  const file = value as FlagsFileJson;
  if (file.flags !== undefined) {
    if (!file.flags || typeof file.flags !== 'object' || Array.isArray(file.flags)) {
      throw new FlagsFileError('"flags" must be an object of flag key → flag JSON');
    }
    for (const [key, flag] of Object.entries(file.flags)) {
      validateFlag(key, flag);
    }
  }
  if (file.flagValues !== undefined && (!file.flagValues || typeof file.flagValues !== 'object' || Array.isArray(file.flagValues))) {
    throw new FlagsFileError('"flagValues" must be an object of flag key → value');
  }
  if (file.segments !== undefined && (!file.segments || typeof file.segments !== 'object' || Array.isArray(file.segments))) {
    throw new FlagsFileError('"segments" must be an object of segment key → segment JSON');
  }
  for (const [key, segment] of Object.entries(file.segments ?? {})) validateSegment(key, segment);
  return file;
}

function validateFlag(key: string, flag: unknown): asserts flag is FlagJson {
  const where = `flags["${key}"]`;
  if (!flag || typeof flag !== 'object' || Array.isArray(flag)) throw new FlagsFileError(`${where} must be an object`);
  const f = flag as Partial<FlagJson>;
  if (f.key !== undefined && f.key !== key) throw new FlagsFileError(`${where}.key is "${String(f.key)}", expected "${key}"`);
  if (typeof f.on !== 'boolean') throw new FlagsFileError(`${where}.on must be true or false`);
  if (!Array.isArray(f.variations) || f.variations.length === 0) throw new FlagsFileError(`${where}.variations must be a non-empty array`);
  const nVar = f.variations.length;
  const isIndex = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0 && (v as number) < nVar;
  if (f.offVariation !== undefined && f.offVariation !== null && !isIndex(f.offVariation)) {
    throw new FlagsFileError(`${where}.offVariation must be an index into variations`);
  }
  const ft = f.fallthrough;
  if (!ft || typeof ft !== 'object') throw new FlagsFileError(`${where}.fallthrough must be an object`);
  if (ft.rollout !== undefined) {
    const r = ft.rollout;
    if (!r || typeof r !== 'object' || !Array.isArray(r.variations) || r.variations.length === 0) {
      throw new FlagsFileError(`${where}.fallthrough.rollout.variations must be a non-empty array`);
    }
    let sum = 0;
    r.variations.forEach((wv, i) => {
      if (!wv || typeof wv !== 'object' || !isIndex(wv.variation)) {
        throw new FlagsFileError(`${where}.fallthrough.rollout.variations[${i}].variation must be an index into variations`);
      }
      if (!Number.isInteger(wv.weight) || wv.weight < 0 || wv.weight > WEIGHT_TOTAL) {
        throw new FlagsFileError(`${where}.fallthrough.rollout.variations[${i}].weight must be an integer from 0 to ${WEIGHT_TOTAL}`);
      }
      sum += wv.weight;
    });
    if (sum !== WEIGHT_TOTAL) throw new FlagsFileError(`${where}.fallthrough.rollout weights add up to ${sum}, expected ${WEIGHT_TOTAL}`);
    if (r.contextKind !== undefined && typeof r.contextKind !== 'string') throw new FlagsFileError(`${where}.fallthrough.rollout.contextKind must be a string`);
    if (r.bucketBy !== undefined && typeof r.bucketBy !== 'string') throw new FlagsFileError(`${where}.fallthrough.rollout.bucketBy must be a string`);
  } else if (!isIndex(ft.variation)) {
    throw new FlagsFileError(`${where}.fallthrough needs a variation index or a rollout`);
  }
  // The SDK walks these when a flag is stored (rules and their clauses and rollouts)
  // or evaluated: anything but arrays of objects makes it throw.
  for (const list of ['targets', 'contextTargets', 'prerequisites'] as const) checkObjectList(`${where}.${list}`, f[list]);
  checkRules(`${where}.rules`, f.rules, 'flag');
}

/** `value`, when present (not undefined or null), must be an array of objects. */
function checkObjectList(where: string, value: unknown): asserts value is Record<string, unknown>[] | undefined | null {
  if (value === undefined || value === null) return;
  if (!Array.isArray(value)) throw new FlagsFileError(`${where} must be an array`);
  value.forEach((item, i) => {
    if (!item || typeof item !== 'object' || Array.isArray(item)) throw new FlagsFileError(`${where}[${i}] must be an object`);
  });
}

/** Flag or segment rules: an array of objects whose clauses are objects with a string attribute, and whose bucketBy is a string. */
function checkRules(where: string, rules: unknown, kind: 'flag' | 'segment'): void {
  checkObjectList(where, rules);
  for (const [i, rule] of (rules ?? []).entries()) {
    const clauses = rule.clauses;
    checkObjectList(`${where}[${i}].clauses`, clauses);
    for (const [j, clause] of (clauses ?? []).entries()) {
      if (clause.attribute !== undefined && clause.attribute !== null && typeof clause.attribute !== 'string') {
        throw new FlagsFileError(`${where}[${i}].clauses[${j}].attribute must be a string`);
      }
    }
    if (kind === 'flag' && rule.rollout !== undefined && rule.rollout !== null) {
      const r = rule.rollout as { bucketBy?: unknown; variations?: unknown };
      if (typeof r !== 'object' || Array.isArray(r)) throw new FlagsFileError(`${where}[${i}].rollout must be an object`);
      if (r.bucketBy !== undefined && r.bucketBy !== null && typeof r.bucketBy !== 'string') throw new FlagsFileError(`${where}[${i}].rollout.bucketBy must be a string`);
      checkObjectList(`${where}[${i}].rollout.variations`, r.variations);
    }
    if (kind === 'segment' && rule.bucketBy !== undefined && rule.bucketBy !== null && typeof rule.bucketBy !== 'string') {
      throw new FlagsFileError(`${where}[${i}].bucketBy must be a string`);
    }
  }
}

function validateSegment(key: string, segment: unknown): void {
  const where = `segments["${key}"]`;
  if (!segment || typeof segment !== 'object' || Array.isArray(segment)) throw new FlagsFileError(`${where} must be an object`);
  const s = segment as Record<string, unknown>;
  for (const list of ['included', 'excluded']) {
    if (s[list] !== undefined && s[list] !== null && !Array.isArray(s[list])) throw new FlagsFileError(`${where}.${list} must be an array`);
  }
  for (const list of ['includedContexts', 'excludedContexts']) checkObjectList(`${where}.${list}`, s[list]);
  checkRules(`${where}.rules`, s.rules, 'segment');
}

/** Parses and validates flags file text. Throws FlagsFileError on garbage. */
export function parseFlagsFile(text: string): FlagsFileJson {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new FlagsFileError(`the flags file is not valid JSON: ${(err as Error).message}`);
  }
  return validateFlagsFile(parsed);
}

/**
 * Reads the rollout out of the migration flag's JSON. A flag that is off or not
 * a rollout is reported as what it means (0 or 100 percent).
 */
export function rolloutOfFlag(flag: FlagJson): RolloutState {
  const variations = flag.variations;
  const bifrostIndex = variations.indexOf('bifrost');
  const r = flag.fallthrough.rollout;
  let percent: number;
  let bucketBy: BucketBy = 'user';
  if (!flag.on) {
    const off = flag.offVariation;
    percent = off !== undefined && off === bifrostIndex ? 100 : 0;
  } else if (r) {
    const weight = r.variations.filter((wv) => wv.variation === bifrostIndex).reduce((a, wv) => a + wv.weight, 0);
    percent = weight / (WEIGHT_TOTAL / 100);
    bucketBy = r.contextKind === 'team' ? 'team' : 'user';
  } else {
    percent = flag.fallthrough.variation === bifrostIndex ? 100 : 0;
  }
  return { percent, bucketBy, salt: flag.salt ?? '', version: flag.version ?? 0, on: flag.on };
}

/** Reads the flags file. Throws FlagsFileError if it is garbage or lacks the migration flag; ENOENT as is. */
export async function readFlagsFile(file: string): Promise<FlagsFileJson> {
  return parseFlagsFile(await readFile(file, 'utf8'));
}

/**
 * The current rollout from the flags file. A missing file reads as 0% by user
 * (what the shim creates on first run); a file without the flag is an error.
 */
export async function readRollout(file: string): Promise<RolloutState> {
  let parsed: FlagsFileJson;
  try {
    parsed = await readFlagsFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { percent: 0, bucketBy: 'user', salt: '', version: 0, on: true };
    throw err;
  }
  const flag = parsed.flags?.[FLAG_KEY];
  if (!flag) throw new FlagsFileError(`${file} has no flag "${FLAG_KEY}"`);
  return rolloutOfFlag(flag);
}

/** Writes text to a new temp file next to `file`, fsynced; returns its path. */
async function writeTempBeside(file: string, text: string): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Writes text to `file` atomically: temp file in the same directory, fsync, rename. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = await writeTempBeside(file, text);
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Sets the rollout in the flags file (atomically). Keeps the file's other flags,
 * and the migration flag's salt when there is one, so raising the percentage
 * only adds users; bumps the flag's version. A file that exists but is garbage
 * is refused (never overwritten). Returns the state written.
 */
export async function writeRollout(file: string, rollout: Rollout): Promise<RolloutState> {
  const percent = validatePercent(rollout.percent);
  const bucketBy = validateBucketBy(rollout.bucketBy);
  // Writers (the CLI, the admin API, the dashboard) read-modify-write the file:
  // a short lock (`<file>.lock`, atomic mkdir) keeps two of them from losing an update.
  await mkdir(dirname(file), { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(file, {
      realpath: false,
      lockfilePath: `${file}.lock`,
      stale: 10_000,
      retries: { retries: 60, minTimeout: 5, maxTimeout: 100, factor: 1.3, randomize: true },
    });
  } catch (err) {
    throw new FlagsFileError(`could not lock ${file} (${(err as Error).message}): another writer holds it; retry in a moment`);
  }
  try {
    return await writeRolloutLocked(file, percent, bucketBy);
  } finally {
    await release().catch(() => {});
  }
}

async function writeRolloutLocked(file: string, percent: number, bucketBy: BucketBy): Promise<RolloutState> {
  let current: FlagsFileJson = {};
  try {
    current = await readFlagsFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new FlagsFileError(`refusing to overwrite ${file}: ${(err as Error).message}`);
    }
  }
  const previous = current.flags?.[FLAG_KEY];
  const salt = previous?.salt || newSalt();
  const version = (typeof previous?.version === 'number' ? previous.version : 0) + 1;
  const flag = buildFlag({ percent, bucketBy }, salt, version);
  const next: FlagsFileJson = { ...current, flags: { ...(current.flags ?? {}), [FLAG_KEY]: flag } };
  await writeFileAtomic(file, JSON.stringify(next, null, 2) + '\n');
  return { percent, bucketBy, salt, version, on: true };
}

/**
 * Creates the flags file with the migration flag at 0% (by user) if it does not
 * exist yet; leaves an existing file alone. Returns true when it created it.
 */
export async function ensureFlagsFile(file: string): Promise<boolean> {
  try {
    await readFile(file);
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const flag = buildFlag({ percent: 0, bucketBy: 'user' }, newSalt(), 1);
  const text = JSON.stringify({ flags: { [FLAG_KEY]: flag } }, null, 2) + '\n';
  // Write a temp file, then hard-link it into place: link() fails if the file
  // appeared meanwhile, so a file someone else wrote is never clobbered.
  const tmp = await writeTempBeside(file, text);
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}
