/**
 * `GET /godserver/init`: the startup call a Sync client makes to learn which
 * socket server to use. Contract (docs/legacy-protocol.md):
 *
 *   200 {"user":{"id","teamId"},"syncserver_url","flags":{…},"retryAfterInSeconds":300}
 *   401 for a missing or bad `x-access-token`.
 */
import { verifyAccessToken, TokenError } from '../gateway/token.ts';
import { accessTokenOf } from './auth-policy.ts';
import type { SailsAction } from './sails-types.ts';

/** The action identity the route points at. */
export const GODSERVER_INIT_ACTION = 'godserver/init';

/** Feature flags the reference Godserver hands every client. */
export const GODSERVER_FLAGS = { sync: true, websocket: true, notification: true } as const;

/** How long a client waits before calling init again, as real Godserver says. */
export const GODSERVER_RETRY_AFTER_SECONDS = 300;

export interface GodserverInitOptions {
  tokenSecret: string;
  /** The app's own public URL (known only after listen when the port is random). */
  syncServerUrl: () => string;
}

export function createGodserverInitAction(opts: GodserverInitOptions): SailsAction {
  return (req, res) => {
    verifyAccessToken(opts.tokenSecret, accessTokenOf(req)).then(
      (claims) => {
        res.status(200).json({
          user: { id: claims.userId, teamId: claims.teamId },
          syncserver_url: opts.syncServerUrl(),
          flags: { ...GODSERVER_FLAGS },
          retryAfterInSeconds: GODSERVER_RETRY_AFTER_SECONDS,
        });
      },
      (err: unknown) => {
        const message = err instanceof TokenError ? err.message : 'access token could not be verified';
        res.status(401).json({ error: { name: 'authenticationError', message } });
      },
    );
  };
}
