/**
 * Where the rollout percentage lives: the local flags file (the shim reads it
 * through the LaunchDarkly SDK's evaluator) or a live LaunchDarkly flag changed
 * through the REST API. One interface, two implementations side by side:
 * `flag-target-file.ts` and `flag-target-launchdarkly.ts`; `openFlagTarget`
 * picks live mode when LD_API_TOKEN, LD_PROJECT_KEY and LD_ENVIRONMENT_KEY are set.
 */
import { FlagsFileError, validateBucketBy, validatePercent, type BucketBy } from '../../proxy/flags-file.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import { FileFlagTarget } from './flag-target-file.ts';
import { LaunchDarklyFlagTarget } from './flag-target-launchdarkly.ts';
import type { FlagOverride } from './flag-overrides.ts';
import { launchDarklyOptionsFromEnv } from './launchdarkly-rest.ts';

/** The rollout as the flag holds it. */
export interface FlagRollout {
  /** Share of contexts on Bifrost, 0..100. */
  percent: number;
  bucketBy: BucketBy;
  /** The flag's version where the target has one. */
  version?: number;
  /** Whether targeting is on; off = everyone gets the flag's off variation (targets and rules included). */
  on?: boolean;
  /**
   * Individual targets and rules in force (none while targeting is off): they
   * come before the percentage, so the contexts they match keep their variation.
   */
  overrides?: FlagOverride[];
}

export interface FlagWrite {
  percent: number;
  /** Unset: keep the flag's current bucket-by. */
  bucketBy?: BucketBy;
  /** Why (LaunchDarkly keeps it in the flag's history). */
  comment: string;
  /**
   * `bifrost rollout rollback`, or a ramp's breach rollback to 0 % (with
   * percent 0): everyone to Sync. Live
   * LaunchDarkly then also turns targeting off when the flag's off variation is
   * "sync", so its individual targets and rules no longer apply either.
   */
  rollback?: boolean;
}

export interface FlagWriteResult extends FlagRollout {
  /** Anything worth telling the operator (e.g. the flag was off and was turned on). */
  notes: string[];
  /**
   * What the percentage written does not decide: targets or rules in force
   * that serve another variation, or targets and rules this write removed.
   */
  warnings?: string[];
}

export interface FlagTarget {
  readonly kind: 'file' | 'launchdarkly';
  /** For messages: `flags file .bifrost/flags.json`, `LaunchDarkly project/environment`. */
  readonly description: string;
  read(): Promise<FlagRollout>;
  write(change: FlagWrite): Promise<FlagWriteResult>;
}

export interface FlagTargetChoice {
  flagsFile: string;
  env?: NodeJS.ProcessEnv;
  /** Where LaunchDarkly retry notes go. */
  note?: (line: string) => void;
  /** Flags-file mode: create a missing flags file instead of refusing (`--create-flags-file`). */
  createFlagsFile?: boolean;
}

/** Live LaunchDarkly when LD_API_TOKEN, LD_PROJECT_KEY, LD_ENVIRONMENT_KEY are set, else the flags file. */
export function openFlagTarget(choice: FlagTargetChoice): FlagTarget {
  const ld = launchDarklyOptionsFromEnv(choice.env ?? process.env);
  if (ld) return new LaunchDarklyFlagTarget({ ...ld, note: choice.note });
  return new FileFlagTarget(choice.flagsFile, { createMissing: choice.createFlagsFile });
}

/** Parses a percent argument (0..100, at most 3 decimals); CliError (exit 2) otherwise. */
export function parsePercent(value: string, name = 'percent'): number {
  const n = value.trim() === '' ? NaN : Number(value.trim().replace(/%$/, ''));
  try {
    return validatePercent(n);
  } catch (err) {
    if (err instanceof FlagsFileError) throw new CliError(`${name} ${err.message.replace(/^percent /, '').replace(/, got .*$/, '')}, got "${value}"`, EXIT_USAGE);
    throw err;
  }
}

/** Parses `user|team`; CliError (exit 2) otherwise. */
export function parseBucketBy(value: string): BucketBy {
  try {
    return validateBucketBy(value);
  } catch {
    throw new CliError(`--bucket-by must be "user" or "team", got "${value}"`, EXIT_USAGE);
  }
}
