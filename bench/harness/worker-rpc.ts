/**
 * Request/response over a child's IPC channel: the bench drives its
 * publisher and client generator processes with it.
 *
 * Parent: `const w = await startWorker('generator', 'bench/harness/client-generator.ts')`
 * then `await w.call('connect', {...})`. Child: `serveRpc({ connect: async (args) => ... })`.
 */
import path from 'node:path';
import { ROOT, TSX_IMPORT, spawnTracked, type Child } from './processes.ts';

interface RpcRequest {
  rpc: number;
  method: string;
  args: unknown;
}
interface RpcResponse {
  rpc: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export interface Worker {
  child: Child;
  call<T = unknown>(method: string, args?: unknown, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

/** Forks a TypeScript worker with an IPC channel; resolves once it said it is ready. */
export async function startWorker(name: string, file: string, nodeArgs: string[] = []): Promise<Worker> {
  const child = spawnTracked(name, process.execPath, [...nodeArgs, ...TSX_IMPORT, path.join(ROOT, file)], { ipc: true });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let next = 1;
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  child.proc.on('message', (m: RpcResponse | { ready: true }) => {
    if ('ready' in m) return ready();
    const p = pending.get(m.rpc);
    if (!p) return;
    pending.delete(m.rpc);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.value);
    else p.reject(new Error(`${name}: ${m.error}`));
  });
  child.proc.once('exit', (code, sig) => {
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`${name} exited (${code ?? sig}):\n${child.stderrTail.slice(-10).join('\n')}`));
    }
    pending.clear();
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      readyP,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${name} did not start within 20 s`)), 20_000);
        child.proc.once('exit', (code) => reject(new Error(`${name} exited (${code}) at start:\n${child.stderrTail.slice(-10).join('\n')}`)));
      }),
    ]);
  } catch (err) {
    await child.stop(500);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    child,
    call<T>(method: string, args?: unknown, timeoutMs = 600_000): Promise<T> {
      const rpc = next++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(rpc);
          reject(new Error(`${name}.${method} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(rpc, { resolve: resolve as (v: unknown) => void, reject, timer });
        child.proc.send({ rpc, method, args } satisfies RpcRequest);
      });
    },
    stop: () => child.stop(1000),
  };
}

/** Child side: answers the parent's calls; exits when the parent goes away. */
export function serveRpc(methods: Record<string, (args: any) => unknown>): void {
  if (!process.send) throw new Error('serveRpc needs an IPC channel (start with startWorker)');
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: RpcRequest) => {
    const fn = methods[m.method];
    void (async () => {
      try {
        if (!fn) throw new Error(`unknown method ${m.method}`);
        const value = await fn(m.args);
        process.send!({ rpc: m.rpc, ok: true, value } satisfies RpcResponse);
      } catch (err) {
        process.send!({ rpc: m.rpc, ok: false, error: (err as Error).stack ?? String(err) } satisfies RpcResponse);
      }
    })();
  });
  process.send({ ready: true });
}
