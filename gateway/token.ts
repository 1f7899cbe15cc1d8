/**
 * Client access tokens: HS256 JWTs with claims `sub` (user id), `team` (team id)
 * and `exp`. Shared by the gateway, the legacy reference app and the shim so
 * every component accepts exactly the same tokens.
 */
import { SignJWT, jwtVerify, errors } from 'jose';

export const DEV_TOKEN_SECRET = 'bifrost-dev-token-secret-change-me';

export interface AccessClaims {
  userId: string;
  teamId: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly reason: 'missing' | 'malformed' | 'expired' | 'signature' | 'claims',
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

const encoder = new TextEncoder();
/**
 * One WebCrypto HMAC key per secret. jose imports a raw (Uint8Array) secret
 * again on every sign and verify; importing it once takes that work off every
 * connection's handshake.
 */
const keyCache = new Map<string, Promise<CryptoKey>>();
function keyOf(secret: string): Promise<CryptoKey> {
  let k = keyCache.get(secret);
  if (!k) {
    k = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    keyCache.set(secret, k);
  }
  return k;
}

/** Parses "90s", "15m", "1h", "7d" or a plain number of seconds. */
export function parseTtl(ttl: string | number): number {
  if (typeof ttl === 'number') return ttl;
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(ttl.trim());
  if (!m) throw new Error(`invalid duration "${ttl}": expected a number followed by s, m, h or d (e.g. 1h)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * { s: 1, m: 60, h: 3600, d: 86400 }[unit as 's' | 'm' | 'h' | 'd'];
}

/** Mints a token for a user of a team, valid for `ttl` (default one hour). */
export async function signAccessToken(
  secret: string,
  claims: { userId: string; teamId: string },
  ttl: string | number = '1h',
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ team: claims.teamId })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.userId)
    .setIssuedAt(now)
    .setExpirationTime(now + parseTtl(ttl))
    .sign(await keyOf(secret));
}

/**
 * Verifies a token. Only HS256 is accepted (so `alg: none` and key-confusion
 * tokens are refused); `exp` is required. Throws TokenError with the reason.
 */
export async function verifyAccessToken(secret: string, token: string | undefined | null): Promise<AccessClaims> {
  if (!token) throw new TokenError('missing access token', 'missing');
  if (token.length > 8192) throw new TokenError('access token too long', 'malformed');
  try {
    const { payload } = await jwtVerify(token, await keyOf(secret), { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] });
    const team = payload.team;
    if (typeof payload.sub !== 'string' || !payload.sub || typeof team !== 'string' || !team) {
      throw new TokenError('access token lacks the sub or team claim', 'claims');
    }
    return { userId: payload.sub, teamId: team, exp: payload.exp as number };
  } catch (err) {
    if (err instanceof TokenError) throw err;
    if (err instanceof errors.JWTExpired) throw new TokenError('access token expired', 'expired');
    if (err instanceof errors.JWSSignatureVerificationFailed) throw new TokenError('access token signature invalid', 'signature');
    if (err instanceof errors.JWTClaimValidationFailed) throw new TokenError(`access token claim invalid: ${err.message}`, 'claims');
    throw new TokenError(`access token malformed: ${(err as Error).message}`, 'malformed');
  }
}

/** The token secret from the environment, warning loudly when the dev default is used. */
export function tokenSecretFromEnv(log: { warn: (msg: string) => void } = console): string {
  const s = process.env.BIFROST_TOKEN_SECRET;
  if (s) return s;
  log.warn('BIFROST_TOKEN_SECRET is not set: using the built-in development secret. Never run this in production.');
  return DEV_TOKEN_SECRET;
}
