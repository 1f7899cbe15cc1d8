/** Reading LaunchDarkly flags and building the semantic patch, and the 429 wait. */
import { describe, expect, it } from 'vitest';
import { fallthroughRolloutInstruction, offVariationValue, rolloutOfLdFlag, variationIds } from '../../cli/rollout/flag-target-launchdarkly.ts';
import { launchDarklyOptionsFromEnv, rateLimitWaitMs, type LdFlag } from '../../cli/rollout/launchdarkly-rest.ts';

const flag = (env: NonNullable<LdFlag['environments']>[string]): LdFlag => ({
  key: 'bifrost-sync-migration',
  variations: [
    { _id: 'id-sync', value: 'sync' },
    { _id: 'id-bifrost', value: 'bifrost' },
  ],
  environments: { production: env },
});

describe('LaunchDarkly flag reading', () => {
  it('reads the bifrost share of a fallthrough rollout, its context kind, and off as 0%', () => {
    const rolled = flag({ on: true, _version: 4, fallthrough: { rollout: { variations: [{ variation: 0, weight: 87_500 }, { variation: 1, weight: 12_500 }], contextKind: 'team', bucketBy: 'key' } } });
    expect(rolloutOfLdFlag(rolled, 'production')).toEqual({ percent: 12.5, bucketBy: 'team', version: 4, on: true });
    expect(rolloutOfLdFlag(flag({ on: false, offVariation: 0, fallthrough: { variation: 1 } }), 'production')).toMatchObject({ percent: 0, on: false });
    expect(rolloutOfLdFlag(flag({ on: true, fallthrough: { variation: 1 } }), 'production')).toMatchObject({ percent: 100, bucketBy: 'user' });
  });

  it('reads the off variation by value: a rollback turns targeting off only when it is "sync"', () => {
    expect(offVariationValue(flag({ on: true, offVariation: 0 }), 'production')).toBe('sync');
    expect(offVariationValue(flag({ on: true, offVariation: 1 }), 'production')).toBe('bifrost');
    expect(offVariationValue(flag({ on: true }), 'production')).toBeUndefined();
    expect(offVariationValue(flag({ on: true, offVariation: 0 }), 'staging')).toBeUndefined();
  });

  it('needs the "sync" and "bifrost" variations', () => {
    expect(variationIds(flag({ on: true }))).toEqual({ sync: 'id-sync', bifrost: 'id-bifrost', bifrostIndex: 1 });
    expect(() => variationIds({ key: 'x', variations: [{ _id: 'a', value: true }, { _id: 'b', value: false }] })).toThrow(/must have the string variations "sync" and "bifrost"/);
  });

  it('builds updateFallthroughVariationOrRollout with weights keyed by variation id, out of 100000', () => {
    expect(fallthroughRolloutInstruction({ sync: 'id-sync', bifrost: 'id-bifrost', bifrostIndex: 1 }, 0.125, 'user')).toEqual({
      kind: 'updateFallthroughVariationOrRollout',
      rolloutWeights: { 'id-bifrost': 125, 'id-sync': 99_875 },
      rolloutBucketBy: 'key',
      rolloutContextKind: 'user',
    });
  });
});

describe('LaunchDarkly REST settings', () => {
  it('waits until X-Ratelimit-Reset (epoch ms), else Retry-After (seconds or a date)', () => {
    const now = 1_700_000_000_000;
    expect(rateLimitWaitMs(new Headers({ 'x-ratelimit-reset': String(now + 1234) }), now)).toBe(1234);
    expect(rateLimitWaitMs(new Headers({ 'x-ratelimit-reset': String(now - 50) }), now)).toBe(0);
    expect(rateLimitWaitMs(new Headers({ 'retry-after': '3' }), now)).toBe(3000);
    expect(rateLimitWaitMs(new Headers({ 'retry-after': new Date(now + 5000).toUTCString() }), now)).toBe(5000);
    expect(rateLimitWaitMs(new Headers({}), now)).toBeUndefined();
  });

  it('is live mode only with all three variables, and defaults the base URL', () => {
    expect(launchDarklyOptionsFromEnv({})).toBeUndefined();
    expect(launchDarklyOptionsFromEnv({ LD_API_TOKEN: 't', LD_PROJECT_KEY: 'p', LD_ENVIRONMENT_KEY: 'e' })).toEqual({ token: 't', projectKey: 'p', environmentKey: 'e', baseUri: 'https://app.launchdarkly.com' });
    expect(() => launchDarklyOptionsFromEnv({ LD_API_TOKEN: 't' })).toThrow(/missing: LD_PROJECT_KEY, LD_ENVIRONMENT_KEY/);
  });
});
