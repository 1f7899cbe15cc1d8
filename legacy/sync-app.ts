/**
 * The reference Sync monolith: a real Sails.js 1.5 app (sails-hook-sockets,
 * sails-hook-orm with an in-memory sails-disk), lifted programmatically.
 *
 * Everything a Sails project keeps in api/ and config/ is handed to
 * `new Sails().lift(config)` instead (models, policies and actions through the
 * `moduleDefinitions` keys of the orm / policies / controllers config, hooks as
 * hook factories under `hooks`), so the app is plain ESM TypeScript and
 * several independent instances can run in one process. See
 * docs/legacy-protocol.md for why and for what the app speaks.
 */
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createAuthPolicy, AUTH_POLICY_NAME } from './auth-policy.ts';
import { createBridgeHook, subscribeHeaderPolicy, SUBSCRIBE_HEADER_POLICY_NAME } from './bridge-hook.ts';
import { BridgePublishQueue, disabledBridgeStats, type BridgeStats } from './bridge-queue.ts';
import { collectionModel, modelDefaults } from './collection-model.ts';
import { createGodserverInitAction, GODSERVER_INIT_ACTION } from './godserver-init.ts';
import { freshSailsDiskAdapter, memoryDatastores } from './memory-datastore.ts';
import { SyncRequestMetrics } from './request-metrics.ts';
import { createRequestMetricsHook } from './request-metrics-hook.ts';
import { loadSailsModule, requireCjs, type SailsApp } from './sails-types.ts';
import { sailsLogConfig } from './sync-logger.ts';
import { resolveSyncOptions, type SyncReferenceOptions } from './sync-options.ts';

export type { SyncReferenceOptions } from './sync-options.ts';
export type { BridgeStats } from './bridge-queue.ts';

/** A running reference Sync app. */
export interface SyncReference {
  /** Public URL (Godserver's `syncserver_url`), e.g. http://127.0.0.1:1337. */
  url: string;
  /** The port actually bound (useful with port 0). */
  port: number;
  host: string;
  /** Flushes the bridge (bounded), then lowers Sails: sockets are disconnected, the port is freed. Idempotent. */
  close(): Promise<void>;
  /** The bridge's counters (also served on GET /__bifrost/bridge). */
  bridgeStats(): BridgeStats;
  /** Request counters and latency histogram (served on GET /__bifrost/metrics). */
  readonly requestMetrics: SyncRequestMetrics;
  /** The underlying Sails app, for diagnostics. */
  readonly sails: SailsApp;
}

/** Identity of the one model of the app. */
export const COLLECTION_MODEL = 'collection';

/**
 * Makes the HTTP hook's `handleLift` a plain `server.listen` that reports a
 * failure (EADDRINUSE, EACCES…) to the caller. Sails' own start routine exits
 * the whole process instead, which an embedded app must never do.
 */
function listenWithoutExiting(sails: SailsApp, port: number, host: string): void {
  const http = sails.hooks.http as { server?: Server; handleLift?: (done: (err?: Error) => void) => void } | undefined;
  const server = http?.server;
  if (!http || !server) throw new Error('the Sails HTTP hook did not create a server');
  http.handleLift = (done) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      done(err);
    };
    const onListening = () => {
      server.off('error', onError);
      sails.emit('hook:http:listening');
      done();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  };
}

/** Lifts a reference Sync app. Rejects (with everything cleaned up) if it cannot start. */
export async function startSyncReference(options: SyncReferenceOptions = {}): Promise<SyncReference> {
  const opts = resolveSyncOptions(options);
  const log = opts.log;
  const queue = opts.bridge ? new BridgePublishQueue(opts.bridge, log) : null;
  const bridgeStats = (): BridgeStats => queue?.snapshot() ?? disabledBridgeStats();
  const requestMetrics = new SyncRequestMetrics();

  let publicUrl = opts.publicUrl ?? '';
  const Sails = loadSailsModule();
  const sails = new Sails();

  const policies: Record<string, unknown> = {
    moduleDefinitions: {
      [AUTH_POLICY_NAME]: createAuthPolicy(opts.tokenSecret),
      [SUBSCRIBE_HEADER_POLICY_NAME]: subscribeHeaderPolicy(COLLECTION_MODEL),
    },
    [`${COLLECTION_MODEL}/*`]: AUTH_POLICY_NAME,
  };
  if (opts.subscribeHeader) policies[`${COLLECTION_MODEL}/findone`] = [AUTH_POLICY_NAME, SUBSCRIBE_HEADER_POLICY_NAME];

  const config = {
    // No api/ or config/ here: everything comes from this config object.
    appPath: fileURLToPath(new URL('.', import.meta.url)),
    environment: 'development',
    // The port is bound by listenWithoutExiting(); Sails' own value is only informative.
    port: opts.port,
    explicitHost: opts.host,
    globals: false,
    log: sailsLogConfig(log, opts.sailsLogLevel),
    hooks: {
      grunt: false,
      views: false,
      session: false,
      i18n: false,
      orm: requireCjs('sails-hook-orm'),
      sockets: requireCjs('sails-hook-sockets'),
      bifrostBridge: createBridgeHook({ queue, stats: bridgeStats, moreMetrics: () => requestMetrics.text() }),
      bifrostRequestMetrics: createRequestMetricsHook(requestMetrics),
    },
    sockets: { allowEIO3: true },
    blueprints: { shortcuts: false, actions: false, rest: true },
    models: modelDefaults,
    datastores: memoryDatastores,
    orm: {
      skipProductionWarnings: true,
      moduleDefinitions: {
        adapters: { 'sails-disk': freshSailsDiskAdapter() },
        models: { [COLLECTION_MODEL]: collectionModel() },
      },
    },
    policies,
    controllers: {
      moduleDefinitions: {
        [GODSERVER_INIT_ACTION]: createGodserverInitAction({ tokenSecret: opts.tokenSecret, syncServerUrl: () => publicUrl }),
      },
    },
    routes: { 'GET /godserver/init': { action: GODSERVER_INIT_ACTION } },
  };

  const lowerSails = () =>
    new Promise<void>((resolve) => {
      sails.lower({ delay: 100 }, (err) => {
        if (err) log.warn({ err: err.message }, 'error while lowering Sails');
        resolve();
      });
    });

  try {
    // lift() = load() + initialize(); done in two steps to replace the HTTP hook's
    // listen, which calls process.exit(1) when the port is taken.
    await new Promise<void>((resolve, reject) => sails.load(config, (err) => (err ? reject(err) : resolve())));
    listenWithoutExiting(sails, opts.port, opts.host);
    await new Promise<void>((resolve, reject) => sails.initialize((err) => (err ? reject(err) : resolve())));
  } catch (err) {
    await lowerSails();
    await queue?.close(0);
    throw new Error(`Sync reference app failed to start on ${opts.host}:${opts.port}: ${(err as Error)?.message ?? err}`);
  }

  // Sails installs SIGINT/SIGTERM handlers that exit the process; whoever embeds
  // this app (the CLI, a test, `bifrost up`) owns the signals instead.
  const listeners = sails._processListeners ?? {};
  for (const [signal, key] of [['SIGINT', 'sigint'], ['SIGTERM', 'sigterm'], ['SIGUSR2', 'sigusr2'], ['exit', 'exit']] as const) {
    if (listeners[key]) process.removeListener(signal, listeners[key]);
  }

  const server = sails.hooks.http?.server as Server | undefined;
  const address = server?.address();
  const port = address && typeof address === 'object' ? address.port : opts.port;
  const urlHost = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  if (!publicUrl) publicUrl = `http://${urlHost}:${port}`;
  log.info({ url: publicUrl, bridge: bridgeStats().target ?? 'off' }, 'Sync reference app lifted');

  let closing: Promise<void> | undefined;
  return {
    url: publicUrl,
    port,
    host: opts.host,
    sails,
    bridgeStats,
    requestMetrics,
    close() {
      closing ??= (async () => {
        await queue?.close(opts.bridgeFlushTimeoutMs);
        await lowerSails();
        log.info({ url: publicUrl }, 'Sync reference app lowered');
      })();
      return closing;
    },
  };
}
