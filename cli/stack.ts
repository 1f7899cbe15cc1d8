/**
 * The whole stack on one machine (`bifrost up`, `npm start`): the reference
 * Sync with its Godserver and dual-publish bridge, N Bifrost nodes (in this
 * process on the embedded broker, or as child processes sharing Redis), the
 * `sync` service registered, and the shim with its admin API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { DEV_SERVICE_TOKEN } from '../gateway/config.ts';
import { startGateway, type RunningGateway } from '../gateway/gateway.ts';
import { DEV_TOKEN_SECRET } from '../gateway/token.ts';
import { startSyncReference, type SyncReference } from '../legacy/sync-app.ts';
import { startShim, type ShimHandle } from '../proxy/shim.ts';
import { DEV_ADMIN_TOKEN } from '../proxy/shim.ts';
import { claimEmbeddedBroker } from './embedded-broker-lock.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/bifrost.mjs');

export interface StackOptions {
  shimPort: number;
  adminPort: number;
  gatewayPort: number;
  privatePort: number;
  syncPort: number;
  /** Redis URL; unset = embedded broker (then nodes must be 1). */
  redisUrl?: string;
  redisPrefix?: string;
  nodes: number;
  flagsFile: string;
  tokenSecret: string;
  serviceToken: string;
  adminToken: string;
  logLevel: string;
  /** Gateway drain window (shortened for a laptop). */
  drainWindowMs: number;
  onProgress?: (msg: string) => void;
}

export interface GatewayNodeHandle {
  nodeId: string;
  publicUrl: string;
  privateUrl: string;
  close(): Promise<void>;
}

export interface RunningStack {
  shimUrl: string;
  adminUrl: string;
  syncUrl: string;
  nodes: GatewayNodeHandle[];
  flagsFile: string;
  broker: 'memory' | 'redis';
  close(): Promise<void>;
}

/** Reads env with the contract's defaults. */
export function stackOptionsFromEnv(env: NodeJS.ProcessEnv, o: { redis?: string; nodes?: number; logLevel?: string }): StackOptions {
  const num = (v: string | undefined, d: number) => (v === undefined || v === '' ? d : Number(v));
  return {
    shimPort: num(env.BIFROST_SHIM_PORT, 3000),
    adminPort: num(env.BIFROST_ADMIN_PORT, 9090),
    gatewayPort: num(env.BIFROST_GATEWAY_PORT, 8080),
    privatePort: num(env.BIFROST_PRIVATE_PORT, 8081),
    syncPort: num(env.SYNC_PORT, 1337),
    redisUrl: o.redis ?? env.REDIS_URL,
    redisPrefix: env.BIFROST_REDIS_PREFIX,
    nodes: o.nodes ?? 1,
    flagsFile: env.BIFROST_FLAGS_FILE ?? '.bifrost/flags.json',
    tokenSecret: env.BIFROST_TOKEN_SECRET || DEV_TOKEN_SECRET,
    serviceToken: env.BIFROST_SERVICE_TOKEN || DEV_SERVICE_TOKEN,
    adminToken: env.BIFROST_ADMIN_TOKEN || DEV_ADMIN_TOKEN,
    logLevel: o.logLevel ?? env.LOG_LEVEL ?? 'warn',
    drainWindowMs: 2000,
  };
}

/** Port for node i: the base for node 0, else consecutive pairs above the private port (0 stays 0 = random). */
function nodePorts(o: StackOptions, i: number): { port: number; privatePort: number } {
  if (i === 0) return { port: o.gatewayPort, privatePort: o.privatePort };
  if (o.gatewayPort === 0) return { port: 0, privatePort: 0 };
  return { port: o.privatePort + 2 * i - 1, privatePort: o.privatePort + 2 * i };
}

async function spawnGatewayNode(o: StackOptions, i: number): Promise<GatewayNodeHandle> {
  const { port, privatePort } = nodePorts(o, i);
  const nodeId = `gw-${i + 1}`;
  const child: ChildProcess = spawn(
    process.execPath,
    [BIN, 'gateway', '--json', '--port', String(port), '--private-port', String(privatePort), '--redis', o.redisUrl!, '--node-id', nodeId, '--drain-window', `${o.drainWindowMs}ms`, '--log-level', o.logLevel],
    {
      env: { ...process.env, BIFROST_TOKEN_SECRET: o.tokenSecret, BIFROST_SERVICE_TOKEN: o.serviceToken, ...(o.redisPrefix ? { BIFROST_REDIS_PREFIX: o.redisPrefix } : {}) },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let buf = '';
  const info = await new Promise<{ nodeId: string; publicUrl: string; privateUrl: string }>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      buf += String(d);
      const end = buf.indexOf('}\n');
      if (end >= 0) resolve(JSON.parse(buf.slice(buf.indexOf('{'), end + 1)));
    });
    child.once('exit', (code) => reject(new Error(`gateway node ${nodeId} exited with code ${code} before it was ready`)));
  });
  return {
    ...info,
    async close() {
      if (child.exitCode !== null || child.signalCode) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), o.drainWindowMs + 3000);
      await once(child, 'exit');
      clearTimeout(timer);
    },
  };
}

function inProcessNode(gw: RunningGateway): GatewayNodeHandle {
  return {
    nodeId: gw.nodeId,
    publicUrl: gw.publicUrl,
    privateUrl: gw.privateUrl,
    async close() {
      await gw.drain(Math.min(1000, gw.ctx.opts.drainWindowMs));
      await gw.close();
    },
  };
}

export async function startStack(o: StackOptions): Promise<RunningStack> {
  const progress = o.onProgress ?? (() => {});
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 16) throw new Error(`--nodes must be an integer from 1 to 16, got ${o.nodes}`);
  if (o.nodes > 1 && !o.redisUrl) throw new Error('--nodes > 1 needs --redis <url>: the embedded broker lives inside one process and cannot be shared');
  const started: { close(): Promise<void> }[] = [];
  const closeAll = async () => {
    for (const s of started.reverse()) await s.close().catch(() => {});
  };
  try {
    const nodes: GatewayNodeHandle[] = [];
    if (o.nodes === 1) {
      // One process on the embedded broker per local stack (the flags file's directory).
      const claim = o.redisUrl ? undefined : claimEmbeddedBroker(path.dirname(o.flagsFile), 'bifrost up');
      if (claim) started.push({ close: async () => claim.release() });
      progress('starting Bifrost gateway');
      const { port, privatePort } = nodePorts(o, 0);
      const gw = await startGateway({
        port,
        privatePort,
        host: '127.0.0.1',
        nodeId: 'gw-1',
        redisUrl: o.redisUrl,
        redisPrefix: o.redisPrefix,
        tokenSecret: o.tokenSecret,
        serviceToken: o.serviceToken,
        logLevel: o.logLevel,
        drainWindowMs: o.drainWindowMs,
        // Sync, the shim and this node share one process here: the process's CPU
        // and loop delay are not the gateway's, so they do not gate admission.
        load: { cpu: 1000, eventLoopDelay: 1e9 },
      });
      claim?.describe({ publicUrl: gw.publicUrl, privateUrl: gw.privateUrl });
      nodes.push(inProcessNode(gw));
    } else {
      progress(`starting ${o.nodes} Bifrost gateway processes on ${o.redisUrl}`);
      for (let i = 0; i < o.nodes; i++) nodes.push(await spawnGatewayNode(o, i));
    }
    started.push(...nodes);

    progress('starting the reference Sync (Sails)');
    const log = pino({ level: o.logLevel }, pino.destination(2));
    const sync: SyncReference = await startSyncReference({
      port: o.syncPort,
      host: '127.0.0.1',
      tokenSecret: o.tokenSecret,
      bifrostPrivateUrl: nodes[0]!.privateUrl,
      serviceToken: o.serviceToken,
      log,
    });
    started.push(sync);

    const reg = await fetch(`${nodes[0]!.privateUrl}/v1/services/sync`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${o.serviceToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ upstream: sync.url, prefixes: ['/'] }),
    });
    if (!reg.ok) throw new Error(`registering service sync failed: ${reg.status} ${await reg.text()}`);

    progress('starting the shim');
    const shim: ShimHandle = await startShim({
      port: o.shimPort,
      adminPort: o.adminPort,
      host: '127.0.0.1',
      godserverUrl: sync.url,
      syncUrl: sync.url,
      bifrostUrls: nodes.map((n) => n.publicUrl),
      flagsFile: o.flagsFile,
      tokenSecret: o.tokenSecret,
      adminToken: o.adminToken,
      log: log.child({ component: 'shim' }),
    });
    started.push(shim);

    return {
      shimUrl: shim.url,
      adminUrl: shim.adminUrl,
      syncUrl: sync.url,
      nodes,
      flagsFile: o.flagsFile,
      broker: o.redisUrl ? 'redis' : 'memory',
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
