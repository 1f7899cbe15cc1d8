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
 *
 * Individual targets and rules come before the fallthrough: every write warns
 * when those in force serve another variation than the percentage implies
 * (flag-overrides.ts). A rollback (`FlagWrite.rollback`) also turns targeting
 * off (`turnFlagOff`) when the flag's off variation is "sync", so that
 * everyone, targets and rules included, gets Sync; when the off variation is
 * anything else targeting is left on and the warning says why. A flag that is
 * off stays off on a rollback unless its off variation is "bifrost".
 */
import { FLAG_KEY, WEIGHT_TOTAL, type BucketBy } from '../../proxy/flags-file.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import { conflictingOverrides, describeOverrides, overridesOf, overridesWarning, type FlagOverride } from './flag-overrides.ts';
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

/** The individual targets and rules listed in the flag's environment (in force only while targeting is on). */
export function overridesOfLdFlag(flag: LdFlag, environmentKey: string): FlagOverride[] {
  const env = flag.environments?.[environmentKey];
  const values = (Array.isArray(flag.variations) ? flag.variations : []).map((v) => v.value);
  return overridesOf(values, { targets: env?.targets, contextTargets: env?.contextTargets, rules: env?.rules });
}

/** The value of the flag's off variation in the environment (`sync`, `bifrost`, …), undefined when it has none. */
export function offVariationValue(flag: LdFlag, environmentKey: string): unknown {
  const off = flag.environments?.[environmentKey]?.offVariation;
  return typeof off === 'number' ? flag.variations?.[off]?.value : undefined;
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
    const flag = await this.rest.getFlag(this.flagKey);
    const r = rolloutOfLdFlag(flag, this.rest.environmentKey);
    return { percent: r.percent, bucketBy: r.bucketBy, version: r.version, on: r.on, overrides: r.on ? overridesOfLdFlag(flag, this.rest.environmentKey) : [] };
  }

  async write(change: FlagWrite): Promise<FlagWriteResult> {
    const flag = await this.rest.getFlag(this.flagKey);
    const ids = variationIds(flag);
    const envKey = this.rest.environmentKey;
    const current = rolloutOfLdFlag(flag, envKey);
    const bucketBy = change.bucketBy ?? current.bucketBy;
    const listed = overridesOfLdFlag(flag, envKey);
    const offValue = offVariationValue(flag, envKey);
    const offText = offValue === undefined ? 'not set' : `"${typeof offValue === 'string' ? offValue : JSON.stringify(offValue)}"`;
    const rollback = change.rollback === true && change.percent === 0;
    const instructions: Record<string, unknown>[] = [];
    const notes: string[] = [];
    const warnings: string[] = [];
    let on = current.on;
    // Off serves the off variation to everyone: turn targeting on for the percentage to apply,
    // except on a rollback whose off variation is not Bifrost (everyone is already off Bifrost).
    if (!on && (!rollback || offValue === 'bifrost')) {
      instructions.push({ kind: 'turnFlagOn' });
      on = true;
      notes.push(`targeting was off in environment ${envKey} (everyone got the off variation, ${offText}); turned it on`);
    }
    instructions.push(fallthroughRolloutInstruction(ids, change.percent, bucketBy));
    if (rollback && on && offValue === 'sync') {
      instructions.push({ kind: 'turnFlagOff' });
      on = false;
      const stuck = conflictingOverrides(listed, 0);
      notes.push(
        `turned targeting off in environment ${envKey}: its off variation is "sync", so everyone gets Sync${stuck.length ? `, including the contexts of its ${describeOverrides(stuck)}` : ', individual targets and rules included'}; \`bifrost rollout set\` or a ramp turns it on again`,
      );
    }
    const warning = overridesWarning(on ? listed : [], change.percent);
    if (warning) {
      const why = rollback
        ? ` — targeting was left on because the flag's off variation is ${offText}, not "sync" (turning it off would not send everyone to Sync): remove them in LaunchDarkly, or make "sync" the off variation and roll back again`
        : ': change or remove them in LaunchDarkly';
      warnings.push(`${warning}${why}`);
    }
    const updated = await this.rest.patchFlag(this.flagKey, instructions, change.comment);
    let version: number | undefined;
    try {
      version = rolloutOfLdFlag(updated, envKey).version;
    } catch {
      version = undefined;
    }
    return { percent: change.percent, bucketBy, version, on, overrides: on ? listed : [], notes, warnings };
  }
}
