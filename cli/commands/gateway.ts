import path from 'node:path';
import type { Command } from 'commander';
import { parseHostList, serviceTokenFromEnv, usesRedisBroker } from '../../gateway/config.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { tokenSecretFromEnv } from '../../gateway/token.ts';
import { flagsFilePathFromEnv } from '../../proxy/flags-file.ts';
import { claimEmbeddedBroker, type EmbeddedBrokerClaim } from '../embedded-broker-lock.ts';
import { onStopSignal, parseDurationMs, parsePort } from '../graceful.ts';
import { CliError, printJson } from '../output.ts';

interface GatewayCliOptions {
  port?: string;
  privatePort?: string;
  host?: string;
  privateHost?: string;
  publicUrl?: string;
  redis?: string;
  redisPrefix?: string;
  nodeId?: string;
  drainWindow?: string;
  logLevel?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('gateway')
    .description('Run one Bifrost node: public gateway (/ws, /socket.io/) and private API. Production runs N of these.')
    .option('--port <port>', 'public port (env BIFROST_GATEWAY_PORT)', process.env.BIFROST_GATEWAY_PORT ?? '8080')
    .option('--private-port <port>', 'private API port (env BIFROST_PRIVATE_PORT)', process.env.BIFROST_PRIVATE_PORT ?? '8081')
    .option('--host <addr>', 'public bind address', '0.0.0.0')
    .option('--private-host <addr>', 'private API bind address (keep it internal)', '127.0.0.1')
    .option('--public-url <url>', 'URL clients use to reach this node (announced to the shim)')
    .option('--redis <url>', 'Redis broker URL (env REDIS_URL); unset = embedded in-process broker, one node only')
    .option('--redis-prefix <prefix>', 'key prefix in Redis (env BIFROST_REDIS_PREFIX)', process.env.BIFROST_REDIS_PREFIX ?? 'bifrost:')
    .option('--node-id <id>', 'node id in the registry and logs')
    .option('--drain-window <duration>', 'SIGTERM drain window over which clients are moved away', '30s')
    .option('--log-level <level>', 'pino log level', process.env.LOG_LEVEL ?? 'info')
    .option('--json', 'print the ready line as JSON')
    .addHelpText(
      'after',
      `
Environment: REDIS_URL, REDIS_SENTINELS + REDIS_SENTINEL_NAME, REDIS_CLUSTER_NODES, BIFROST_TOKEN_SECRET, BIFROST_SERVICE_TOKEN.
SIGTERM drains (reconnect frames spread over the drain window, then close 1012); a second signal exits at once.
Without a Redis setting the node runs the embedded broker, which serves this one process: it claims
<dir of BIFROST_FLAGS_FILE>/embedded-broker.json (.bifrost/ by default) and a second gateway there is refused.

Examples:
  $ bifrost gateway                                   # embedded broker, ports 8080/8081
  $ REDIS_URL=redis://10.0.0.5:6379 bifrost gateway --node-id gw-a --public-url wss://gw-a.example.com`,
    )
    .action(async (o: GatewayCliOptions) => {
      let port: number, privatePort: number, drainWindowMs: number;
      let sentinels: ReturnType<typeof parseHostList> | undefined;
      let clusterNodes: ReturnType<typeof parseHostList> | undefined;
      try {
        port = parsePort(o.port!, '--port');
        privatePort = parsePort(o.privatePort!, '--private-port');
        drainWindowMs = parseDurationMs(o.drainWindow!, '--drain-window');
        sentinels = process.env.REDIS_SENTINELS ? parseHostList(process.env.REDIS_SENTINELS) : undefined;
        clusterNodes = process.env.REDIS_CLUSTER_NODES ? parseHostList(process.env.REDIS_CLUSTER_NODES) : undefined;
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const warn = { warn: (m: string) => process.stderr.write(`warning: ${m}\n`) };
      const redisUrl = o.redis ?? process.env.REDIS_URL;
      // The embedded broker serves one process: a second gateway on it is refused.
      let claim: EmbeddedBrokerClaim | undefined;
      if (!usesRedisBroker({ redisUrl, redisSentinels: sentinels, redisClusterNodes: clusterNodes })) {
        try {
          claim = claimEmbeddedBroker(path.dirname(flagsFilePathFromEnv()), 'bifrost gateway');
        } catch (err) {
          throw new CliError(`gateway refused: ${(err as Error).message}`);
        }
      }
      let gw;
      try {
        gw = await startGateway({
          port,
          privatePort,
          host: o.host,
          privateHost: o.privateHost,
          publicUrl: o.publicUrl,
          nodeId: o.nodeId,
          redisUrl,
          redisPrefix: o.redisPrefix,
          redisSentinels: sentinels,
          redisSentinelName: process.env.REDIS_SENTINEL_NAME,
          redisClusterNodes: clusterNodes,
          drainWindowMs,
          tokenSecret: tokenSecretFromEnv(warn),
          serviceToken: serviceTokenFromEnv(warn),
          logLevel: o.logLevel,
        });
      } catch (err) {
        claim?.release();
        throw new CliError(`gateway failed to start: ${(err as Error).message}`);
      }
      claim?.describe({ publicUrl: gw.publicUrl, privateUrl: gw.privateUrl });
      if (gw.ctx.broker.kind === 'memory') {
        process.stderr.write('note: no REDIS_URL: this node uses the embedded in-process broker, so it cannot share topics with any other node. Set REDIS_URL to run several.\n');
      }
      const info = { nodeId: gw.nodeId, publicUrl: gw.publicUrl, privateUrl: gw.privateUrl, broker: gw.ctx.broker.kind };
      if (o.json) printJson(info);
      else process.stdout.write(`gateway ${gw.nodeId} ready: public ${gw.publicUrl} (ws ${gw.publicUrl.replace(/^http/, 'ws')}/ws), private ${gw.privateUrl}, broker ${gw.ctx.broker.kind}\n`);
      onStopSignal(async (signal) => {
        process.stderr.write(`${signal}: draining ${gw.ctx.registry.size} connections over ${drainWindowMs} ms\n`);
        await gw.drain();
        await gw.close();
        claim?.release();
      });
    });
}
