/**
 * Options of the reference Sync app, with every default in one place.
 * Options not given fall back to the environment of the contract
 * (SYNC_PORT, BIFROST_TOKEN_SECRET, BIFROST_PRIVATE_URL, BIFROST_SERVICE_TOKEN).
 */
import { DEV_SERVICE_TOKEN } from '../gateway/config.ts';
import { DEV_TOKEN_SECRET } from '../gateway/token.ts';
import { BRIDGE_QUEUE_DEFAULTS, type BridgeQueueOptions } from './bridge-queue.ts';
import { defaultSyncLogger, type SailsLogLevel, type SyncLogger } from './sync-logger.ts';

export interface SyncReferenceOptions {
  /** Port to listen on; 0 picks a free one. Default: SYNC_PORT, else 1337. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** The URL clients reach this app at (Godserver's `syncserver_url`). Default http://<host>:<port>. */
  publicUrl?: string;
  /** HS256 secret of access tokens. Default: BIFROST_TOKEN_SECRET, else the dev secret (with a warning). */
  tokenSecret?: string;
  /** Bifrost's private API; set, it switches the dual-publish bridge on. Default: BIFROST_PRIVATE_URL. */
  bifrostPrivateUrl?: string;
  /** Bearer token for Bifrost's private API. Default: BIFROST_SERVICE_TOKEN, else the dev token (with a warning). */
  serviceToken?: string;
  /** Add `x-bifrost-subscribe` to single-record reads. Default: on when the bridge is on. */
  subscribeHeader?: boolean;
  /** Tuning of the bridge queue (sizes, timeouts, backoff); defaults in BRIDGE_QUEUE_DEFAULTS. */
  bridge?: Partial<Omit<BridgeQueueOptions, 'privateUrl' | 'serviceToken'>>;
  /** On close, how long queued bridge publications may still go out. Default 2 000 ms. */
  bridgeFlushTimeoutMs?: number;
  /** Structured logger (pino). Default: pino on stderr. */
  log?: SyncLogger;
  /** Level of Sails' own log lines routed into `log`. Default 'warn'. */
  sailsLogLevel?: SailsLogLevel;
  /** Environment the fallbacks are read from. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedSyncOptions {
  port: number;
  host: string;
  publicUrl?: string;
  tokenSecret: string;
  bridge: (Pick<BridgeQueueOptions, 'privateUrl' | 'serviceToken'> & Partial<BridgeQueueOptions>) | null;
  subscribeHeader: boolean;
  bridgeFlushTimeoutMs: number;
  log: SyncLogger;
  sailsLogLevel: SailsLogLevel;
}

export const SYNC_DEFAULT_PORT = 1337;
export const SYNC_DEFAULT_HOST = '127.0.0.1';
export const SYNC_DEFAULT_BRIDGE_FLUSH_MS = 2_000;

/** Parses a TCP port (0 allowed); throws with a precise message otherwise. */
export function parsePort(value: string | number, what = 'port'): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid ${what} "${value}": expected an integer from 0 to 65535`);
  return n;
}

/** Applies defaults and checks the options once. Throws on inconsistent options. */
export function resolveSyncOptions(opts: SyncReferenceOptions = {}): ResolvedSyncOptions {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultSyncLogger();
  const port = parsePort(opts.port ?? env.SYNC_PORT ?? SYNC_DEFAULT_PORT, 'Sync port');
  let tokenSecret = opts.tokenSecret ?? (env.BIFROST_TOKEN_SECRET || undefined);
  if (!tokenSecret) {
    log.warn({ component: 'sync-reference' }, 'BIFROST_TOKEN_SECRET is not set: using the built-in development secret. Never run this in production.');
    tokenSecret = DEV_TOKEN_SECRET;
  }
  const privateUrl = opts.bifrostPrivateUrl ?? (env.BIFROST_PRIVATE_URL || undefined);
  let serviceToken = opts.serviceToken ?? (env.BIFROST_SERVICE_TOKEN || undefined);
  if (privateUrl && !serviceToken) {
    log.warn({ component: 'sync-reference' }, 'BIFROST_SERVICE_TOKEN is not set: the bridge uses the built-in development service token. Never run this in production.');
    serviceToken = DEV_SERVICE_TOKEN;
  }
  if (privateUrl) {
    try {
      new URL(privateUrl);
    } catch {
      throw new Error(`invalid Bifrost private URL "${privateUrl}"`);
    }
  }
  const bridge = privateUrl && serviceToken ? { ...BRIDGE_QUEUE_DEFAULTS, ...opts.bridge, privateUrl, serviceToken } : null;
  return {
    port,
    host: opts.host ?? SYNC_DEFAULT_HOST,
    publicUrl: opts.publicUrl,
    tokenSecret,
    bridge,
    subscribeHeader: opts.subscribeHeader ?? bridge !== null,
    bridgeFlushTimeoutMs: opts.bridgeFlushTimeoutMs ?? SYNC_DEFAULT_BRIDGE_FLUSH_MS,
    log,
    sailsLogLevel: opts.sailsLogLevel ?? 'warn',
  };
}
