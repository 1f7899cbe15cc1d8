/**
 * The live LaunchDarkly flag target. Reads the flag (to learn the variation ids
 * of "sync" and "bifrost", the current fallthrough rollout and whether
 * targeting is on) and changes the fallthrough with one semantic patch
 * instruction, `updateFallthroughVariationOrRollout`, whose `rolloutWeights`
 * are keyed by variation id (out of 100000), with `rolloutContextKind`
 * user|team and `rolloutBucketBy` "key". LaunchDarkly keeps the flag's salt,
 * so raising the percentage only adds contexts. A flag whose targeting is off
 * serves its off variation to everyone; the patch then also turns it on (and
 * says so).
 */
import { FLAG_KEY, WEIGHT_TOTAL, type BucketBy } from '../../proxy/flags-file.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import { LaunchDarklyRest, type LaunchDarklyRestOptions, type LdFlag } from './launchdarkly-rest.ts';
import type { FlagRollout, FlagTarget, FlagWrite, FlagWriteResult } from './flag-target.ts';

interface VariationIds {
  sync: string;
  bifrost: string;
  bifrostIndex: number;
}

/** The ids of the "sync" and "bifrost" variations; CliError when the flag lacks them. */
export function variationIds(flag: LdFlag): VariationIds {
  const vs = Array.isArray(flag.variations) ? flag.variations : [];
  const bifrostIndex = vs.findIndex((v) => v.value === 'bifrost');
  const sync = vs.find((v) => v.value === 'sync');
  if (bifrostIndex < 0 || !sync || !vs[bifrostIndex]!._id || !sync._id) {
    throw new CliError(`LaunchDarkly flag "${flag.key}" must have the string variations "sync" and "bifrost" (with ids); it has ${JSON.stringify(vs.map((v) => v.value))}`, EXIT_USAGE);
  }
  return { sync: sync._id, bifrost: vs[bifrostIndex]!._id, bifrostIndex };
}

/** The rollout a LaunchDarkly flag serves in one environment. */
export function rolloutOfLdFlag(flag: LdFlag, environmentKey: string): FlagRollout & { on: boolean } {
  const env = flag.environments?.[environmentKey];
  const { bifrostIndex } = variationIds(flag);
  const on = env?.on ?? false;
  const r = env?.fallthrough?.rollout;
  let percent = 0;
  const bucketBy: BucketBy = r?.contextKind === 'team' ? 'team' : 'user';
  if (!on) {
    percent = env?.offVariation === bifrostIndex ? 100 : 0;
  } else if (r && Array.isArray(r.variations)) {
    percent = r.variations.filter((v) => v.variation === bifrostIndex).reduce((a, v) => a + v.weight, 0) / (WEIGHT_TOTAL / 100);
  } else {
    percent = env?.fallthrough?.variation === bifrostIndex ? 100 : 0;
  }
  return { percent, bucketBy, version: env?._version ?? flag._version, on };
}

/** The semantic patch instruction that sets the fallthrough rollout. */
export function fallthroughRolloutInstruction(ids: VariationIds, percent: number, bucketBy: BucketBy): Record<string, unknown> {
  const bifrostWeight = Math.round(percent * (WEIGHT_TOTAL / 100));
  return {
    kind: 'updateFallthroughVariationOrRollout',
    rolloutWeights: { [ids.bifrost]: bifrostWeight, [ids.sync]: WEIGHT_TOTAL - bifrostWeight },
    rolloutBucketBy: 'key',
    rolloutContextKind: bucketBy,
  };
}

export class LaunchDarklyFlagTarget implements FlagTarget {
  readonly kind = 'launchdarkly' as const;
  readonly description: string;
  private readonly rest: LaunchDarklyRest;

  constructor(
    opts: LaunchDarklyRestOptions,
    readonly flagKey: string = FLAG_KEY,
  ) {
    this.rest = new LaunchDarklyRest(opts);
    this.description = `LaunchDarkly flag ${flagKey} (project ${opts.projectKey}, environment ${opts.environmentKey})`;
  }

  async read(): Promise<FlagRollout> {
    const r = rolloutOfLdFlag(await this.rest.getFlag(this.flagKey), this.rest.environmentKey);
    return { percent: r.percent, bucketBy: r.bucketBy, version: r.version };
  }

  async write(change: FlagWrite): Promise<FlagWriteResult> {
    const flag = await this.rest.getFlag(this.flagKey);
    const ids = variationIds(flag);
    const current = rolloutOfLdFlag(flag, this.rest.environmentKey);
    const bucketBy = change.bucketBy ?? current.bucketBy;
    const instructions: Record<string, unknown>[] = [];
    const notes: string[] = [];
    if (!current.on) {
      instructions.push({ kind: 'turnFlagOn' });
      notes.push(`targeting was off in environment ${this.rest.environmentKey} (everyone got the off variation); turned it on`);
    }
    instructions.push(fallthroughRolloutInstruction(ids, change.percent, bucketBy));
    const updated = await this.rest.patchFlag(this.flagKey, instructions, change.comment);
    let version: number | undefined;
    try {
      version = rolloutOfLdFlag(updated, this.rest.environmentKey).version;
    } catch {
      version = undefined;
    }
    return { percent: change.percent, bucketBy, version, notes };
  }
}
