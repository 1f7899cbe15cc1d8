/** Starting gateway nodes for tests: in-process, or as real `bifrost gateway` processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startGateway, type RunningGateway } from '../../gateway/gateway.ts';
import type { GatewayOptions } from '../../gateway/config.ts';
import { signAccessToken } from '../../gateway/token.ts';
import { freePort } from './redis-server.ts';

export const TEST_SECRET = 'test-token-secret';
export const TEST_SERVICE_TOKEN = 'test-service-token';
export const ROOT = path.resolve(import.meta.dirname, '../..');
export const BIFROST_BIN = path.join(ROOT, 'bin/bifrost.mjs');

export function token(userId = 'u1', teamId = 't1', ttl: string | number = '1h', secret = TEST_SECRET): Promise<string> {
  return signAccessToken(secret, { userId, teamId }, ttl);
}

/**
 * In-process gateways share their process with the test's clients (and
 * sometimes a Sails app), so the process's CPU and event-loop delay are not
 * the gateway's own: those two admission dimensions are set out of reach
 * unless a test sets them. Admission itself is tested with explicit targets.
 */
export const IN_PROCESS_LOAD = { cpu: 1000, eventLoopDelay: 1e9 };

export async function startTestGateway(opts: GatewayOptions = {}): Promise<RunningGateway> {
  return startGateway({ port: 0, privatePort: 0, host: '127.0.0.1', tokenSecret: TEST_SECRET, serviceToken: TEST_SERVICE_TOKEN, logLevel: 'silent', ...opts, load: { ...IN_PROCESS_LOAD, ...opts.load } });
}

/** Calls the private API with the service token. */
export async function privateCall(base: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(base + p, {
    method,
    headers: { authorization: `Bearer ${TEST_SERVICE_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

export interface GatewayProcess {
  child: ChildProcess;
  publicUrl: string;
  privateUrl: string;
  nodeId: string;
  stdout: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `bifrost gateway` as a separate process, as production does. It runs in
 * its own temporary directory (`cwd`), where a gateway on the embedded broker
 * claims `.bifrost/embedded-broker.json`; pass the same `cwd` to start a
 * second one next to it.
 */
export async function spawnGateway(env: Record<string, string>, args: string[] = [], dir?: string): Promise<GatewayProcess> {
  const cwd = dir ?? mkdtempSync(path.join(tmpdir(), 'bifrost-gw-'));
  const port = await freePort();
  const privatePort = await freePort();
  const child = spawn(process.execPath, [BIFROST_BIN, 'gateway', '--port', String(port), '--private-port', String(privatePort), '--host', '127.0.0.1', '--log-level', 'warn', '--json', ...args], {
    cwd,
    env: { ...process.env, BIFROST_TOKEN_SECRET: TEST_SECRET, BIFROST_SERVICE_TOKEN: TEST_SERVICE_TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A directory made here goes with the process; one the caller passed is the caller's.
  if (!dir) child.once('exit', () => rmSync(cwd, { recursive: true, force: true }));
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stderr!.on('data', (d) => stderr.push(String(d)));
  let buf = '';
  const info = await new Promise<{ nodeId: string; publicUrl: string; privateUrl: string }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`gateway did not start within 60 s: ${stderr.join('')}`)), 60_000);
    child.stdout!.on('data', (d) => {
      stdout.push(String(d));
      buf += String(d);
      const end = buf.indexOf('}\n');
      if (end >= 0) {
        clearTimeout(t);
        resolve(JSON.parse(buf.slice(buf.indexOf('{'), end + 1)));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`gateway exited with ${code}: ${stderr.join('')}`));
    });
  });
  return {
    child,
    ...info,
    stdout,
    async stop(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode) return child.exitCode;
      child.kill(signal);
      const [code] = await once(child, 'exit');
      return code as number | null;
    },
  };
}
