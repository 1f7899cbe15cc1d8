/**
 * `bifrost sync-reference`: the reference legacy Sync app (Sails.js, with
 * `GET /godserver/init` and the dual-publish bridge) alone, as production
 * would run the user's own Sync.
 */
import type { Command } from 'commander';
import { startSyncReference, type SyncReference } from '../../legacy/sync-app.ts';
import { SYNC_DEFAULT_PORT } from '../../legacy/sync-options.ts';
import { onStopSignal, parsePort } from '../graceful.ts';
import { CliError, printJson } from '../output.ts';
import { pino } from 'pino';

interface SyncReferenceCliOptions {
  port?: string;
  host: string;
  publicUrl?: string;
  bifrostPrivate?: string;
  logLevel: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('sync-reference')
    .description('Run the reference legacy Sync app alone: Sails.js sockets + blueprints, GET /godserver/init, dual-publish bridge')
    .option('--port <port>', `port to listen on, 0 = any free port (env SYNC_PORT, default ${SYNC_DEFAULT_PORT})`)
    .option('--host <addr>', 'bind address', '127.0.0.1')
    .option('--public-url <url>', 'URL clients reach this app at, returned as syncserver_url by /godserver/init (default http://<host>:<port>)')
    .option('--bifrost-private <url>', "Bifrost's private API: switches the dual-publish bridge on (env BIFROST_PRIVATE_URL)")
    .option('--log-level <level>', 'pino log level (logs go to stderr)', process.env.LOG_LEVEL ?? 'info')
    .option('--json', 'print the ready line as JSON')
    .addHelpText(
      'after',
      `
Environment: SYNC_PORT, BIFROST_TOKEN_SECRET (access tokens), BIFROST_PRIVATE_URL and
BIFROST_SERVICE_TOKEN (the bridge to Bifrost's private API). SIGINT/SIGTERM stop it cleanly.

Examples:
  $ bifrost sync-reference                                  # http://127.0.0.1:1337
  $ bifrost sync-reference --port 1338 --bifrost-private http://127.0.0.1:8081
  $ curl -H "x-access-token: $(bifrost token --user u1 --team t1)" http://127.0.0.1:1337/godserver/init`,
    )
    .action(async (o: SyncReferenceCliOptions) => {
      let port: number;
      let bifrostPrivateUrl: string | undefined;
      try {
        port = parsePort(o.port ?? process.env.SYNC_PORT ?? String(SYNC_DEFAULT_PORT), o.port !== undefined ? '--port' : 'SYNC_PORT');
        bifrostPrivateUrl = o.bifrostPrivate ?? (process.env.BIFROST_PRIVATE_URL || undefined);
        if (bifrostPrivateUrl) checkUrl(bifrostPrivateUrl, o.bifrostPrivate !== undefined ? '--bifrost-private' : 'BIFROST_PRIVATE_URL');
        if (o.publicUrl) checkUrl(o.publicUrl, '--public-url');
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      let log;
      try {
        log = pino({ name: 'sync-reference', level: o.logLevel }, pino.destination(2));
      } catch (err) {
        throw new CliError(`--log-level: ${(err as Error).message}`);
      }
      let sync: SyncReference;
      try {
        sync = await startSyncReference({ port, host: o.host, publicUrl: o.publicUrl, bifrostPrivateUrl, log });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const bridge = sync.bridgeStats();
      if (o.json) {
        printJson({ url: sync.url, port: sync.port, host: sync.host, bridge: bridge.enabled ? bridge.target : null });
      } else {
        process.stdout.write(`sync-reference listening on ${sync.url}\n`);
        process.stdout.write(bridge.enabled ? `dual-publish bridge on: model events are published to ${bridge.target}\n` : 'dual-publish bridge off (set --bifrost-private or BIFROST_PRIVATE_URL)\n');
      }
      onStopSignal(async (signal) => {
        process.stderr.write(`${signal}: stopping sync-reference\n`);
        await sync.close();
      });
    });
}

function checkUrl(value: string, name: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${name} must be an http(s) URL, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${name} must be an http(s) URL, got "${value}"`);
}
