/**
 * Running `bifrost` as users do (shared by the CLI e2e tests): `bifrost up --json` on
 * random ports in a temporary directory, CLI commands as child processes, and
 * cleanup that kills every process a test started (also when it fails).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/bifrost.mjs', import.meta.url));

export interface StackInfo {
  shimUrl: string;
  adminUrl: string;
  syncUrl: string;
  nodes: { nodeId: string; publicUrl: string; privateUrl: string }[];
  flagsFile: string;
  broker: string;
}

export interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

/** The environment every child gets: no inherited ports, LaunchDarkly or Redis settings, no colors. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(LD_|BIFROST_|REDIS_|SYNC_PORT$|FORCE_COLOR$)/.test(k)) delete env[k];
  }
  return { ...env, NO_COLOR: '1', LOG_LEVEL: 'error', ...extra };
}

/** Starts a `bifrost` child. `killAll` ends it unless `longLived` (a stack, stopped by its own `stop`). */
export function spawnBifrost(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; longLived?: boolean }): Running {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd, env: opts.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  if (!opts.longLived) children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** The first JSON object a long-lived `bifrost … --json` child prints (its start-up info); rejects if it exits first. */
export function readyJson<T>(r: Running, what: string, timeoutMs = 90_000): Promise<T> {
  const ready = waitFor<T>(
    what,
    () => {
      const out = r.stdout();
      const end = out.indexOf('}\n');
      return end >= 0 ? (JSON.parse(out.slice(out.indexOf('{'), end + 1)) as T) : undefined;
    },
    timeoutMs,
  );
  const died = r.exited.then(({ code }) => Promise.reject(new Error(`${what} exited ${code}: ${r.stderr()}`)));
  died.catch(() => {});
  return Promise.race([ready, died]);
}

/** Runs one CLI command to its end. */
export async function runBifrost(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliResult> {
  const r = spawnBifrost(args, opts);
  const timer = setTimeout(() => r.child.kill('SIGKILL'), opts.timeoutMs ?? 150_000);
  const { code } = await r.exited;
  clearTimeout(timer);
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}

/** Kills every (short-lived) child still running (SIGTERM, then SIGKILL). */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...children].map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 8000);
      await gone;
      clearTimeout(t);
    }),
  );
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface Stack {
  dir: string;
  info: StackInfo;
  running: Running;
  /** Env for CLI commands against this stack. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/** `bifrost up --json` on random ports, in a fresh temporary directory. */
export async function startStack(label: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), `bifrost-${label}-`));
  const ports = { BIFROST_SHIM_PORT: '0', BIFROST_ADMIN_PORT: '0', BIFROST_GATEWAY_PORT: '0', BIFROST_PRIVATE_PORT: '0', SYNC_PORT: '0' };
  const env = cleanEnv({ ...ports, BIFROST_FLAGS_FILE: join(dir, 'flags.json'), ...extraEnv });
  const running = spawnBifrost(['up', '--json'], { cwd: dir, env, longLived: true });
  process.once('exit', () => running.child.kill('SIGKILL'));
  const info = await waitFor<StackInfo>(
    'bifrost up --json',
    () => {
      if (running.child.exitCode !== null) throw new Error(`bifrost up exited ${running.child.exitCode}: ${running.stderr()}`);
      const out = running.stdout().trim();
      if (!out.endsWith('}')) return undefined;
      return JSON.parse(out) as StackInfo;
    },
    90_000,
  );
  const cliEnv = cleanEnv({ BIFROST_FLAGS_FILE: join(dir, 'flags.json') });
  return {
    dir,
    info,
    running,
    env: cliEnv,
    async stop() {
      if (running.child.exitCode === null && running.child.signalCode === null) {
        running.child.kill('SIGTERM');
        const t = setTimeout(() => running.child.kill('SIGKILL'), 10_000);
        await running.exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function adminRollout(stack: Stack): Promise<{ percent: number | null; bucketBy: string | null; version: number | null }> {
  const res = await fetch(`${stack.info.adminUrl}/api/rollout`);
  return (await res.json()) as { percent: number | null; bucketBy: string | null; version: number | null };
}

export async function readJsonFile<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Parses a command's `--json` stdout. */
export function json<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}): ${r.stdout}\nstderr: ${r.stderr}`);
  }
}
