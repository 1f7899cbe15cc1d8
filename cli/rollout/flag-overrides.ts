/**
 * What the percentage does not decide: a flag's individual targets (`targets`,
 * `contextTargets`: context keys listed by hand) and targeting rules are
 * evaluated before the fallthrough rollout the CLI writes, so the contexts
 * they match get their variation whatever the percentage says. A rule serving
 * "bifrost" keeps its contexts on Bifrost at 0 %; a target serving "sync"
 * keeps its contexts off Bifrost at 100 %.
 *
 * Both flag targets read them (the flags file's flag JSON and LaunchDarkly's
 * environment configuration have the same shape here) so that `set`, ramp
 * steps, `rollback` and `status` can say when the percentage is not the whole
 * story. Only what is in force counts: a flag whose targeting is off serves
 * its off variation to everyone, targets and rules included.
 */
import { WEIGHT_TOTAL } from '../../proxy/flags-file.ts';

/** One individual target or targeting rule of the migration flag. */
export interface FlagOverride {
  /** `target`: context keys listed one by one; `rule`: a targeting rule. */
  kind: 'target' | 'rule';
  /** Targets: the context kind (`user` when the flag does not say). */
  contextKind?: string;
  /** Targets: how many context keys are listed. */
  contexts?: number;
  /** Rules: the rule's description, else its id, when it has one. */
  rule?: string;
  /** What it serves: a variation's value (`sync`, `bifrost`, …) or `rollout` (a percentage of its own). */
  serves: string;
  /** Share of the contexts it matches that go to Bifrost: 100 for "bifrost", 0 for any other variation, a rule rollout's share. */
  bifrostPercent: number;
}

interface WeightedVariation {
  variation?: unknown;
  weight?: unknown;
}

/** The variation's value as text (`sync`, `bifrost`, or whatever JSON it is). */
function valueText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value) ?? 'undefined';
}

function served(variationValues: readonly unknown[], variation: unknown, rollout: unknown): { serves: string; bifrostPercent: number } | null {
  if (rollout && typeof rollout === 'object' && Array.isArray((rollout as { variations?: unknown }).variations)) {
    const weights = (rollout as { variations: WeightedVariation[] }).variations;
    const bifrostWeight = weights
      .filter((w) => w && Number.isInteger(w.variation) && variationValues[w.variation as number] === 'bifrost')
      .reduce((a, w) => a + (typeof w.weight === 'number' ? w.weight : 0), 0);
    return { serves: 'rollout', bifrostPercent: bifrostWeight / (WEIGHT_TOTAL / 100) };
  }
  if (Number.isInteger(variation) && (variation as number) >= 0 && (variation as number) < variationValues.length) {
    const value = variationValues[variation as number];
    return { serves: valueText(value), bifrostPercent: value === 'bifrost' ? 100 : 0 };
  }
  return null;
}

/**
 * The targets and rules of a flag (flag JSON or a LaunchDarkly environment):
 * `variationValues` are the variations' values in index order. Target entries
 * listing no key (LaunchDarkly's placeholders in `contextTargets` for keys kept
 * in `targets`) and entries that serve nothing readable are left out.
 */
export function overridesOf(variationValues: readonly unknown[], lists: { targets?: unknown; contextTargets?: unknown; rules?: unknown }): FlagOverride[] {
  const out: FlagOverride[] = [];
  for (const list of [lists.targets, lists.contextTargets]) {
    if (!Array.isArray(list)) continue;
    for (const t of list as { values?: unknown; variation?: unknown; contextKind?: unknown }[]) {
      if (!t || typeof t !== 'object') continue;
      const contexts = Array.isArray(t.values) ? t.values.length : 0;
      if (contexts === 0) continue;
      const s = served(variationValues, t.variation, undefined);
      if (!s) continue;
      out.push({ kind: 'target', contextKind: typeof t.contextKind === 'string' ? t.contextKind : 'user', contexts, ...s });
    }
  }
  if (Array.isArray(lists.rules)) {
    for (const r of lists.rules as { variation?: unknown; rollout?: unknown; description?: unknown; _id?: unknown; id?: unknown; ref?: unknown }[]) {
      if (!r || typeof r !== 'object') continue;
      const s = served(variationValues, r.variation, r.rollout);
      if (!s) continue;
      const name = [r.description, r.ref, r._id, r.id].find((v) => typeof v === 'string' && v !== '') as string | undefined;
      out.push({ kind: 'rule', ...(name ? { rule: name } : {}), ...s });
    }
  }
  return out;
}

/** Percentages as the flag stores them (weights out of 100000): equal to 3 decimals. */
export function samePercent(a: number | null | undefined, b: number): boolean {
  return typeof a === 'number' && Math.round(a * 1000) === Math.round(b * 1000);
}

/** The overrides that do not serve what `percent` implies (at 0 % anything with Bifrost, at 100 % anything without). */
export function conflictingOverrides(overrides: readonly FlagOverride[], percent: number): FlagOverride[] {
  return overrides.filter((o) => !samePercent(o.bifrostPercent, percent));
}

function servesText(o: FlagOverride): string {
  return o.serves === 'rollout' ? `a separate rollout (${o.bifrostPercent}% on Bifrost)` : `"${o.serves}"`;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** `2 individual targets (5 contexts) and 1 rule serving "bifrost"; 1 rule serving "sync"`. */
export function describeOverrides(overrides: readonly FlagOverride[]): string {
  const groups = new Map<string, FlagOverride[]>();
  for (const o of overrides) groups.set(servesText(o), [...(groups.get(servesText(o)) ?? []), o]);
  return [...groups.entries()]
    .map(([serves, list]) => {
      const targets = list.filter((o) => o.kind === 'target');
      const rules = list.filter((o) => o.kind === 'rule');
      const parts: string[] = [];
      if (targets.length) {
        parts.push(`${plural(targets.length, 'individual target', 'individual targets')} (${plural(targets.reduce((a, o) => a + (o.contexts ?? 0), 0), 'context', 'contexts')})`);
      }
      if (rules.length) parts.push(plural(rules.length, 'rule', 'rules'));
      return `${parts.join(' and ')} serving ${serves}`;
    })
    .join('; ');
}

/** What `percent` does not mean when overrides contradict it. */
function notEveryone(percent: number): string {
  if (percent === 0) return '0% is not everyone on Sync';
  if (percent === 100) return '100% is not everyone on Bifrost';
  return `${percent}% does not apply to every context`;
}

/**
 * The warning for overrides in force that contradict `percent`, or null when
 * there are none: how many targets and rules, which variation they serve, and
 * that the percentage is therefore not the whole story.
 */
export function overridesWarning(overrides: readonly FlagOverride[], percent: number): string | null {
  const conflicting = conflictingOverrides(overrides, percent);
  if (conflicting.length === 0) return null;
  return `the flag also has ${describeOverrides(conflicting)}: targets and rules come before the percentage, so the contexts they match get what they serve and ${notEveryone(percent)}`;
}
