/** Running `node bin/bifrost.mjs migrate …` as a subprocess, and fixture directories for it. */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const BIN = path.join(ROOT, 'bin/bifrost.mjs');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with a clean environment (no REDIS_URL unless given, no color unless asked). */
export function runCli(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(REDIS_URL|BIFROST_|FORCE_COLOR|NO_COLOR|SYNC_PORT)/.test(k)) env[k] = v;
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v !== undefined) env[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bifrost ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 300_000} ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Copies the shipped playbook and manifests into `dir`, optionally rewriting the collections upstream. */
export async function writeShippedFixture(dir: string, opts: { syncUrl?: string; extraCollections?: string } = {}): Promise<{ migrationsDir: string; playbooksDir: string }> {
  const migrationsDir = path.join(dir, 'migrations');
  const playbooksDir = path.join(dir, 'playbooks');
  await mkdir(migrationsDir, { recursive: true });
  await mkdir(playbooksDir, { recursive: true });
  await copyFile(path.join(ROOT, 'playbooks/sync-to-bifrost.yaml'), path.join(playbooksDir, 'sync-to-bifrost.yaml'));
  for (const squad of ['workspaces', 'notifications']) await copyFile(path.join(ROOT, `migrations/${squad}.yaml`), path.join(migrationsDir, `${squad}.yaml`));
  let collections = await readFile(path.join(ROOT, 'migrations/collections.yaml'), 'utf8');
  if (opts.syncUrl) collections = collections.replace('upstream: http://127.0.0.1:1337', `upstream: ${opts.syncUrl}`);
  await writeFile(path.join(migrationsDir, 'collections.yaml'), collections + (opts.extraCollections ?? ''));
  return { migrationsDir, playbooksDir };
}

/** A playbook of `n` independent steps and a squad following it (for the concurrency cases). */
export async function writeWideFixture(dir: string, n: number): Promise<{ migrationsDir: string; playbooksDir: string; steps: string[] }> {
  const migrationsDir = path.join(dir, 'migrations');
  const playbooksDir = path.join(dir, 'playbooks');
  await mkdir(migrationsDir, { recursive: true });
  await mkdir(playbooksDir, { recursive: true });
  const steps = Array.from({ length: n }, (_, i) => `step-${String(i + 1).padStart(2, '0')}`);
  await writeFile(
    path.join(playbooksDir, 'wide.yaml'),
    `name: wide\ntitle: Many independent steps\nsteps:\n${steps.map((s) => `  - id: ${s}\n    title: Step ${s}\n    why: because\n    how: [do it]\n    check: { type: inventory }\n`).join('')}`,
  );
  await writeFile(
    path.join(migrationsDir, 'wide.yaml'),
    `squad: wide\nowners: [Ada <ada@example.com>]\nplaybook: wide\ntargetDate: 2030-01-01\nservices:\n  - { name: wide, upstream: "http://127.0.0.1:7000", prefixes: [/wide] }\ntopics: ["wide:{id}"]\nevents: [wide]\nroutes: []\n`,
  );
  return { migrationsDir, playbooksDir, steps };
}
