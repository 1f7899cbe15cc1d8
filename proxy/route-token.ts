/**
 * The route token `bf_route`: who a socket belongs to, so the shim can evaluate
 * the flag afresh for that user when the socket (re)connects through it.
 *
 * Format (URL-safe, no padding): `v1.<base64url(userId)>.<base64url(teamId)>.<exp>.<sig>`
 * where `exp` is seconds since the epoch and `sig` = base64url(HMAC-SHA256(secret,
 * "v1.<user>.<team>.<exp>")). Verification recomputes the MAC and compares with
 * `timingSafeEqual`. The token is a routing hint, not an authentication: every
 * virtual request still carries the client's own `x-access-token`. An expired
 * but correctly signed token still verifies, flagged `expired`: the shim routes
 * by its claims and counts it (see docs/shim.md, "Route token").
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const ROUTE_TOKEN_PARAM = 'bf_route';
const VERSION = 'v1';
/** Default lifetime: a day (clients reconnect with the same URL for as long as they run). */
export const DEFAULT_ROUTE_TOKEN_TTL_SECONDS = 24 * 3600;
const MAX_TOKEN_LENGTH = 2048;

export interface RouteClaims {
  userId: string;
  teamId: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

export type RouteTokenFailure = 'missing' | 'malformed' | 'signature';

export class RouteTokenError extends Error {
  constructor(
    message: string,
    readonly reason: RouteTokenFailure,
  ) {
    super(message);
    this.name = 'RouteTokenError';
  }
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');
const unb64 = (s: string): string => Buffer.from(s, 'base64url').toString('utf8');

function mac(secret: string, payload: string): Buffer {
  return createHmac('sha256', secret).update(payload).digest();
}

/** Signs a route token for a user of a team, valid for `ttlSeconds`. */
export function signRouteToken(
  secret: string,
  claims: { userId: string; teamId: string },
  ttlSeconds: number = DEFAULT_ROUTE_TOKEN_TTL_SECONDS,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): string {
  if (!secret) throw new Error('route token secret must not be empty');
  const exp = nowSeconds + Math.max(1, Math.floor(ttlSeconds));
  const payload = `${VERSION}.${b64(claims.userId)}.${b64(claims.teamId)}.${exp}`;
  return `${payload}.${mac(secret, payload).toString('base64url')}`;
}

/**
 * Verifies a route token; returns its claims or throws RouteTokenError with the
 * reason (missing, malformed, signature). A correctly signed token past its
 * expiry still verifies, with `expired: true`: the shim issued it for this user,
 * and as a routing hint (not authentication) it beats stranding a long-running
 * client on Sync.
 */
export function verifyRouteToken(
  secret: string,
  token: string | null | undefined,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): RouteClaims & { expired: boolean } {
  if (!token) throw new RouteTokenError('missing route token', 'missing');
  if (token.length > MAX_TOKEN_LENGTH) throw new RouteTokenError('route token too long', 'malformed');
  const parts = token.split('.');
  if (parts.length !== 5 || parts[0] !== VERSION) throw new RouteTokenError('route token malformed', 'malformed');
  const [, user64, team64, expText, sig64] = parts as [string, string, string, string, string];
  if (!/^\d{1,12}$/.test(expText)) throw new RouteTokenError('route token expiry malformed', 'malformed');
  const expected = mac(secret, `${VERSION}.${user64}.${team64}.${expText}`);
  const given = Buffer.from(sig64, 'base64url');
  // timingSafeEqual needs equal lengths; compare against a same-length buffer either way.
  const sameLength = given.length === expected.length;
  const ok = timingSafeEqual(sameLength ? given : Buffer.alloc(expected.length), expected) && sameLength;
  if (!ok) throw new RouteTokenError('route token signature invalid', 'signature');
  const exp = Number(expText);
  const userId = unb64(user64);
  const teamId = unb64(team64);
  if (!userId) throw new RouteTokenError('route token has no user', 'malformed');
  return { userId, teamId, exp, expired: exp <= nowSeconds };
}
