import { describe, expect, it } from 'vitest';
import { RouteTokenError, signRouteToken, verifyRouteToken } from '../../proxy/route-token.ts';

const secret = 'route-secret-for-tests';
const now = 1_800_000_000;

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof RouteTokenError) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('route token (bf_route)', () => {
  it('round-trips user, team and expiry, including characters outside the URL alphabet', () => {
    const token = signRouteToken(secret, { userId: 'u/1 ü', teamId: 't.1' }, 3600, now);
    expect(token).toMatch(/^[A-Za-z0-9_.-]+$/);
    expect(verifyRouteToken(secret, token, now + 10)).toEqual({ userId: 'u/1 ü', teamId: 't.1', exp: now + 3600, expired: false });
  });

  it('verifies an expired but genuine token, flagged expired (a routing hint, routed by its claims)', () => {
    const token = signRouteToken(secret, { userId: 'u1', teamId: 't1' }, 60, now);
    expect(verifyRouteToken(secret, token, now + 60)).toEqual({ userId: 'u1', teamId: 't1', exp: now + 60, expired: true });
    expect(verifyRouteToken(secret, token, now + 59).expired).toBe(false);
  });

  it('refuses a tampered user, team, expiry or signature, and another secret', () => {
    const token = signRouteToken(secret, { userId: 'u1', teamId: 't1' }, 3600, now);
    const [v, user, team, exp, sig] = token.split('.');
    const b64 = (s: string) => Buffer.from(s).toString('base64url');
    expect(reasonOf(() => verifyRouteToken(secret, [v, b64('admin'), team, exp, sig].join('.'), now))).toBe('signature');
    expect(reasonOf(() => verifyRouteToken(secret, [v, user, b64('t2'), exp, sig].join('.'), now))).toBe('signature');
    expect(reasonOf(() => verifyRouteToken(secret, [v, user, team, String(Number(exp) + 1000), sig].join('.'), now))).toBe('signature');
    expect(reasonOf(() => verifyRouteToken(secret, [v, user, team, exp, sig!.slice(0, -2) + 'AA'].join('.'), now))).toBe('signature');
    expect(reasonOf(() => verifyRouteToken(secret, [v, user, team, exp, 'short'].join('.'), now))).toBe('signature');
    expect(reasonOf(() => verifyRouteToken('other-secret', token, now))).toBe('signature');
  });

  it('refuses missing and malformed tokens', () => {
    expect(reasonOf(() => verifyRouteToken(secret, undefined, now))).toBe('missing');
    expect(reasonOf(() => verifyRouteToken(secret, '', now))).toBe('missing');
    expect(reasonOf(() => verifyRouteToken(secret, 'garbage', now))).toBe('malformed');
    expect(reasonOf(() => verifyRouteToken(secret, 'v2.a.b.1.c', now))).toBe('malformed');
    expect(reasonOf(() => verifyRouteToken(secret, 'v1.a.b.notanumber.c', now))).toBe('malformed');
    expect(reasonOf(() => verifyRouteToken(secret, 'x'.repeat(5000), now))).toBe('malformed');
  });
});
