/**
 * The legacy contract against the reference Sync app directly: unchanged
 * clients connect straight to Sails.
 */
import { signAccessToken } from '../../../gateway/token.ts';
import { startSyncReference, type SyncReference } from '../../../legacy/sync-app.ts';
import { silentLogger } from '../../support/silent-logger.ts';
import { defineLegacyContract } from './scenarios.ts';

const tokenSecret = 'legacy-contract-sync-direct-secret';

defineLegacyContract('Sync directly', async () => {
  const start = (port: number) => startSyncReference({ port, tokenSecret, log: silentLogger, bifrostPrivateUrl: undefined, env: {} });
  let sync: SyncReference = await start(0);
  return {
    get url() {
      return sync.url;
    },
    token: (userId, teamId, ttl) => signAccessToken(tokenSecret, { userId, teamId }, ttl),
    restarts: [
      {
        name: 'Sync',
        dropsClientSockets: true,
        async restart() {
          const port = sync.port;
          await sync.close();
          sync = await start(port);
        },
      },
    ],
    close: () => sync.close(),
  };
});
