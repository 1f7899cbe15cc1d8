/**
 * The Sync auth policy: every request to a protected action must carry an
 * `x-access-token` header holding a valid HS256 access token (the same tokens
 * Bifrost accepts, see gateway/token.ts). Works the same for HTTP requests and
 * socket virtual requests (Sails copies the virtual request's headers onto `req`).
 *
 * Refusal: `403 {"error":{"name":"authenticationError","message":"…"}}`, the
 * shape real Sync clients handle.
 */
import { verifyAccessToken, TokenError } from '../gateway/token.ts';
import type { SailsPolicy, SailsRequest } from './sails-types.ts';

/** Name under which the policy is registered (Sails lower-cases policy names). */
export const AUTH_POLICY_NAME = 'isauthenticated';

/** The access token of a request, from its `x-access-token` header. */
export function accessTokenOf(req: SailsRequest): string | undefined {
  const raw = req.headers['x-access-token'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** Builds the policy for a token secret. Verified claims land on `req.accessClaims`. */
export function createAuthPolicy(tokenSecret: string): SailsPolicy {
  return (req, res, next) => {
    verifyAccessToken(tokenSecret, accessTokenOf(req)).then(
      (claims) => {
        req.accessClaims = claims;
        next();
      },
      (err: unknown) => {
        const message = err instanceof TokenError ? err.message : 'access token could not be verified';
        res.status(403).json({ error: { name: 'authenticationError', message } });
      },
    );
  };
}
