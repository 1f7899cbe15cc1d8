/**
 * The same legacy contract against Bifrost's legacy endpoint, with service
 * `sync` routed to the reference Sync app and Sync's dual-publish bridge on:
 * unchanged clients connect to the gateway instead of Sails and must not
 * notice. Runs on Redis (unique prefix) so a restarted gateway node finds
 * its routing table again.
 */
import { signAccessToken } from '../../../gateway/token.ts';
import { startGateway, type RunningGateway } from '../../../gateway/gateway.ts';
import { startSyncReference, type SyncReference } from '../../../legacy/sync-app.ts';
import { silentLogger } from '../../support/silent-logger.ts';
import { IN_PROCESS_LOAD } from '../../support/gateway.ts';
import { deletePrefix, testRedisUrl, uniquePrefix } from '../../support/redis.ts';
import { defineLegacyContract } from './scenarios.ts';

const tokenSecret = 'legacy-contract-bifrost-secret';
const serviceToken = 'legacy-contract-service-token';

defineLegacyContract('Bifrost legacy endpoint (service sync -> Sync)', async () => {
  const redisUrl = testRedisUrl();
  const prefix = uniquePrefix('legacy-contract');
  const startNode = (port: number, privatePort: number) =>
    startGateway({ port, privatePort, host: '127.0.0.1', tokenSecret, serviceToken, redisUrl, redisPrefix: prefix, logLevel: 'silent', nodeId: 'contract-gw', load: IN_PROCESS_LOAD });
  let gw: RunningGateway = await startNode(0, 0);
  const startSync = (port: number) =>
    startSyncReference({ port, tokenSecret, log: silentLogger, bifrostPrivateUrl: gw.privateUrl, serviceToken, env: {} });
  let sync: SyncReference = await startSync(0);
  const reg = await fetch(`${gw.privateUrl}/v1/services/sync`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upstream: sync.url, prefixes: ['/'] }),
  });
  if (!reg.ok) throw new Error(`registering sync failed: ${reg.status}`);
  return {
    get url() {
      return gw.publicUrl;
    },
    token: (userId, teamId, ttl) => signAccessToken(tokenSecret, { userId, teamId }, ttl),
    restarts: [
      {
        name: 'Sync (behind Bifrost)',
        dropsClientSockets: false,
        async restart() {
          const port = sync.port;
          await sync.close();
          sync = await startSync(port);
        },
      },
      {
        name: 'Bifrost',
        dropsClientSockets: true,
        async restart() {
          const { port, privatePort } = gw;
          await gw.close();
          gw = await startNode(port, privatePort);
        },
      },
    ],
    async close() {
      await sync.close();
      await gw.close();
      await deletePrefix(redisUrl, prefix);
    },
  };
});
