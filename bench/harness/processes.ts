/**
 * Child processes of a bench run: every server, Redis, nginx, the publisher and
 * the client generator is spawned through here, so all of them are killed at
 * the end of the run, on Ctrl-C, on SIGTERM and on any failure.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** Node's flags to run a TypeScript entry point through tsx (same loader as bin/bifrost.mjs). */
export const TSX_IMPORT = ['--import', 'tsx'];

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** Last lines of stderr (for error messages). */
  stderrTail: string[];
  /** Kills the process (SIGKILL after `graceMs` if SIGTERM was not enough); resolves when it exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Child>();
let handlersInstalled = false;

function killEverything(): void {
  for (const c of live) {
    try {
      // Negative pid: the child's own process group (nginx workers, anything it forked).
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      try {
        c.proc.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  live.clear();
}

/** Installs exit/signal handlers once: no child outlives the bench. */
export function installCleanup(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killEverything);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping every child process\n`);
      killEverything();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    killEverything();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`bench: unhandled rejection: ${(err as Error)?.stack ?? String(err)}\n`);
    killEverything();
    process.exit(1);
  });
}

/** Spawns a tracked child in its own process group. stdout lines go to `onLine`. */
export function spawnTracked(
  name: string,
  command: string,
  args: string[],
  opts: SpawnOptions & { onLine?: (line: string) => void; ipc?: boolean } = {},
): Child {
  installCleanup();
  const { onLine, ipc, ...spawnOpts } = opts;
  const proc = spawn(command, args, {
    cwd: ROOT,
    detached: true,
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    ...spawnOpts,
  });
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  const stderrTail: string[] = [];
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    for (const l of d.split('\n')) if (l.trim()) stderrTail.push(l);
    if (stderrTail.length > 40) stderrTail.splice(0, stderrTail.length - 40);
  });
  if (proc.stdout) {
    const rl = createInterface({ input: proc.stdout });
    rl.on('line', (l) => onLine?.(l));
  }
  proc.on('error', () => {});
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    stderrTail,
    async stop(graceMs = 3000) {
      live.delete(child);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      try {
        process.kill(-proc.pid!, 'SIGTERM');
      } catch {
        proc.kill('SIGTERM');
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-proc.pid!, 'SIGKILL');
        } catch {
          proc.kill('SIGKILL');
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
      // Whatever else is left in the group (forked workers).
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        /* group empty */
      }
    },
  };
  live.add(child);
  proc.once('exit', () => live.delete(child));
  return child;
}

/**
 * Spawns a process that prints one JSON line when ready; resolves with that
 * object. Fails (and kills it) when it exits first or after `timeoutMs`.
 */
export async function spawnReady<T>(
  name: string,
  command: string,
  args: string[],
  opts: SpawnOptions & { timeoutMs?: number; isReady?: (obj: Record<string, unknown>) => boolean } = {},
): Promise<{ child: Child; ready: T }> {
  const { timeoutMs = 20_000, isReady = () => true, ...rest } = opts;
  let resolveReady!: (v: T) => void;
  let pendingJson = '';
  const readyP = new Promise<T>((r) => (resolveReady = r));
  const child = spawnTracked(name, command, args, {
    ...rest,
    // The ready object may be printed on one line or pretty-printed over several.
    onLine: (line) => {
      if (!pendingJson && !line.trimStart().startsWith('{')) return;
      pendingJson = pendingJson ? `${pendingJson}\n${line}` : line;
      try {
        const obj = JSON.parse(pendingJson) as Record<string, unknown>;
        pendingJson = '';
        if (isReady(obj)) resolveReady(obj as T);
      } catch {
        if (pendingJson.length > 65_536) pendingJson = '';
      }
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const failure = new Promise<never>((_, reject) => {
    child.proc.once('exit', (code, sig) => reject(new Error(`${name} exited (${code ?? sig}) before it was ready:\n${child.stderrTail.slice(-10).join('\n')}`)));
    timer = setTimeout(() => reject(new Error(`${name} not ready within ${timeoutMs} ms:\n${child.stderrTail.slice(-10).join('\n')}`)), timeoutMs);
  });
  try {
    const ready = await Promise.race([readyP, failure]);
    return { child, ready };
  } catch (err) {
    await child.stop(500);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Stops several children in parallel, ignoring errors. */
export async function stopAll(children: (Child | undefined)[]): Promise<void> {
  await Promise.allSettled(children.filter((c): c is Child => !!c).map((c) => c.stop()));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
