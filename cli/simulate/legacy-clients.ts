/**
 * Unchanged legacy clients (for tests and `bifrost simulate`): the two client stacks real Sync users
 * run, driven only through their public APIs.
 *
 * - `sails.io.js` 1.2.1 on `socket.io-client` 2 (EIO 3): the SDK desktop
 *   clients shipped. Built with the SDK's own factory `sailsIO(ioClient)`,
 *   sockets opened with `io.sails.connect(url, opts)` (autoConnect off,
 *   reconnection on), `x-access-token` sent as a header of every request.
 *   Note: like the real SDK, a query string in the URL replaces the SDK's
 *   handshake query (so `__sails_io_sdk_*` go missing) — the harness passes
 *   the URL untouched so tests see exactly what real clients do. Responses
 *   are what the SDK hands the app: a request Sails refuses to parse comes
 *   back as statusCode 200 with an undefined body (the SDK's JWR defaults).
 * - plain `socket.io-client` 4 (EIO 4) emitting `get|post|put|patch|delete`
 *   virtual requests `{method, url, headers, data}` with an ack itself, and
 *   sending the `__sails_io_sdk_*` handshake parameters sails.io.js sends
 *   (Sails refuses virtual requests without them).
 *
 * sails.io.js is never paired with socket.io-client 4: it hands its own
 * SailsSocket object to the client as options, which client 4 cannot use.
 */
import { createRequire } from 'node:module';
import { withTimeout } from '../../gateway/with-timeout.ts';
import { io as ioV4, type Socket as SocketV4 } from 'socket.io-client';

const requireCjs = createRequire(import.meta.url);

/** A virtual request's answer (Sails' JWR, minus its helpers). */
export interface LegacyResponse {
  statusCode: number;
  body: unknown;
  headers: Record<string, unknown>;
}

export type LegacyClientKind = 'sails.io.js@1.2.1+socket.io-client@2' | 'socket.io-client@4';

export interface LegacyClient {
  readonly kind: LegacyClientKind;
  /** One virtual request; rejects on timeout or when the socket drops mid-request. */
  request(method: string, url: string, data?: unknown, headers?: Record<string, string | undefined>): Promise<LegacyResponse>;
  /** Listens to a server event (e.g. `collection`); returns a function that stops listening. */
  on(event: string, cb: (data: unknown) => void): () => void;
  /**
   * The first event named `event` whose payload satisfies `predicate`: one
   * already received (events listed in `recordEvents` are kept from connect
   * on) or the next one to come. Rejects after `timeoutMs`.
   */
  waitFor<T = unknown>(event: string, predicate: (data: T) => boolean, timeoutMs: number): Promise<T>;
  /** Every payload received so far for a recorded event. */
  received<T = unknown>(event: string): T[];
  /** How many times the socket has connected (1 after the first connect; +1 per reconnect). */
  connectCount(): number;
  /** Resolves once the socket has connected at least `count` times. */
  waitForConnectCount(count: number, timeoutMs: number): Promise<void>;
  isConnected(): boolean;
  /** Closes the socket and stops its reconnection attempts. */
  close(): Promise<void>;
}

export interface LegacyClientOptions {
  /** Socket server URL (as Godserver's `syncserver_url` gives it), possibly with a query string. */
  url: string;
  /** Access token sent as `x-access-token` on every request (unless a request overrides it). */
  token?: string;
  /** Events recorded from connect on, for `waitFor`/`received`. Default ['collection']. */
  recordEvents?: string[];
  /** Timeout of one request. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Timeout of the first connect. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** The client library's reconnection backoff. Defaults 200 ms .. 1 000 ms. */
  reconnectionDelayMs?: number;
  reconnectionDelayMaxMs?: number;
}

/** The handshake query sails.io.js 1.2.1 sends (on Node.js). */
export const SAILS_SDK_QUERY = {
  __sails_io_sdk_version: '1.2.1',
  __sails_io_sdk_platform: 'node',
  __sails_io_sdk_language: 'javascript',
} as const;

const DEFAULTS = {
  recordEvents: ['collection'],
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  reconnectionDelayMs: 200,
  reconnectionDelayMaxMs: 1_000,
};

/** Event bookkeeping shared by both implementations. */
class EventLog {
  private readonly history = new Map<string, unknown[]>();
  private readonly waiters = new Set<{ event: string; test: (d: unknown) => boolean; resolve: (d: unknown) => void }>();
  private connects = 0;
  private readonly connectWaiters = new Set<{ count: number; resolve: () => void }>();

  constructor(readonly recorded: readonly string[]) {
    for (const e of recorded) this.history.set(e, []);
  }

  record(event: string, data: unknown): void {
    this.history.get(event)?.push(data);
    for (const w of [...this.waiters]) {
      if (w.event === event && safeTest(w.test, data)) {
        this.waiters.delete(w);
        w.resolve(data);
      }
    }
  }

  received<T>(event: string): T[] {
    const h = this.history.get(event);
    if (!h) throw new Error(`event "${event}" is not recorded by this client (recordEvents)`);
    return [...h] as T[];
  }

  waitFor<T>(event: string, predicate: (d: T) => boolean, timeoutMs: number, listen: (cb: (d: unknown) => void) => () => void): Promise<T> {
    const test = predicate as (d: unknown) => boolean;
    const past = this.history.get(event)?.find((d) => safeTest(test, d));
    if (past !== undefined) return Promise.resolve(past as T);
    return new Promise<T>((resolve, reject) => {
      let stop: (() => void) | undefined;
      const waiter = {
        event,
        test,
        resolve: (d: unknown) => {
          clearTimeout(timer);
          stop?.();
          resolve(d as T);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        stop?.();
        reject(new Error(`no "${event}" event matching the predicate within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(waiter);
      // Events not recorded from connect on are listened to from now on.
      if (!this.history.has(event)) stop = listen((d) => this.record(event, d));
    });
  }

  connected(): void {
    this.connects++;
    for (const w of [...this.connectWaiters]) {
      if (this.connects >= w.count) {
        this.connectWaiters.delete(w);
        w.resolve();
      }
    }
  }

  connectCount(): number {
    return this.connects;
  }

  waitForConnectCount(count: number, timeoutMs: number): Promise<void> {
    if (this.connects >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.connectWaiters.delete(w);
        reject(new Error(`socket did not reach ${count} connect(s) within ${timeoutMs} ms (has ${this.connects})`));
      }, timeoutMs);
      this.connectWaiters.add(w);
    });
  }
}

function safeTest(test: (d: unknown) => boolean, d: unknown): boolean {
  try {
    return test(d);
  } catch {
    return false;
  }
}

function requestHeaders(token: string | undefined, headers: Record<string, string | undefined> | undefined): Record<string, string> {
  const merged: Record<string, string | undefined> = { ...(token ? { 'x-access-token': token } : {}), ...headers };
  return Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => e[1] !== undefined));
}

// ---------------------------------------------------------------------------
// sails.io.js 1.2.1 on socket.io-client 2

/** The parts of sails.io.js' SailsSocket the harness uses. */
interface SailsSocket {
  request(options: { method: string; url: string; data?: unknown; headers?: Record<string, string> }, cb: (body: unknown, jwr: { statusCode: number; headers?: Record<string, unknown>; body?: unknown }) => void): void;
  on(event: string, fn: (...args: unknown[]) => void): SailsSocket;
  off(event: string, fn: (...args: unknown[]) => void): SailsSocket;
  isConnected(): boolean;
  _raw?: { disconnect(): void };
}

interface SailsIo {
  sails: {
    autoConnect: boolean;
    reconnection: boolean;
    environment: string;
    connect(url: string, opts: Record<string, unknown>): SailsSocket;
  };
}

let sailsIo: SailsIo | undefined;

/** The SDK, built once per process: sails.io.js can augment a given `io` only once. */
function sailsIoSdk(): SailsIo {
  if (!sailsIo) {
    const factory = requireCjs('sails.io.js') as (io: unknown) => SailsIo;
    const io = factory(requireCjs('socket.io-client-v2'));
    // Both must be set in the same tick as the factory call (the SDK checks them on the next tick).
    io.sails.autoConnect = false;
    io.sails.environment = 'production'; // silences the SDK's console banners
    io.sails.reconnection = true;
    sailsIo = io;
  }
  return sailsIo;
}

/** Connects a sails.io.js 1.2.1 client (socket.io-client 2, EIO 3). */
export async function connectSailsIoClient(options: LegacyClientOptions): Promise<LegacyClient> {
  const o = { ...DEFAULTS, ...options };
  const log = new EventLog(o.recordEvents);
  const socket = sailsIoSdk().sails.connect(o.url, {
    reconnection: true,
    reconnectionDelay: o.reconnectionDelayMs,
    reconnectionDelayMax: o.reconnectionDelayMaxMs,
    multiplex: false,
  });
  socket.on('connect', () => log.connected());
  for (const e of o.recordEvents) socket.on(e, (d: unknown) => log.record(e, d));
  const listen = (event: string, cb: (d: unknown) => void) => {
    const fn = (d: unknown) => cb(d);
    socket.on(event, fn);
    return () => void socket.off(event, fn);
  };
  let closed = false;
  const client: LegacyClient = {
    kind: 'sails.io.js@1.2.1+socket.io-client@2',
    request(method, url, data, headers) {
      const p = new Promise<LegacyResponse>((resolve, reject) => {
        socket.request({ method: method.toLowerCase(), url, data: data ?? undefined, headers: requestHeaders(o.token, headers) }, (body, jwr) => {
          // On a disconnect mid-request the SDK calls back with (Error, {statusCode: 0}).
          if (body instanceof Error || !jwr || jwr.statusCode === 0) {
            reject(body instanceof Error ? body : new Error('request failed: no response'));
            return;
          }
          resolve({ statusCode: jwr.statusCode, body, headers: jwr.headers ?? {} });
        });
      });
      return withTimeout(p, o.requestTimeoutMs, `${method.toUpperCase()} ${url} timed out after ${o.requestTimeoutMs} ms`);
    },
    on: listen,
    waitFor: (event, predicate, timeoutMs) => log.waitFor(event, predicate, timeoutMs, (cb) => listen(event, cb)),
    received: (event) => log.received(event),
    connectCount: () => log.connectCount(),
    waitForConnectCount: (n, ms) => log.waitForConnectCount(n, ms),
    isConnected: () => socket.isConnected(),
    async close() {
      if (closed) return;
      closed = true;
      // disconnect() on the raw socket also stops the manager's reconnection attempts.
      socket._raw?.disconnect();
    },
  };
  try {
    await log.waitForConnectCount(1, o.connectTimeoutMs);
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}

// ---------------------------------------------------------------------------
// plain socket.io-client 4

/** Connects a plain socket.io-client 4 (EIO 4) that speaks Sails virtual requests itself. */
export async function connectSocketIo4Client(options: LegacyClientOptions): Promise<LegacyClient> {
  const o = { ...DEFAULTS, ...options };
  const log = new EventLog(o.recordEvents);
  // Keep any query of the URL (e.g. a route token) and add the SDK parameters, as sails.io.js intends.
  const target = new URL(o.url);
  const query: Record<string, string> = { ...Object.fromEntries(target.searchParams), ...SAILS_SDK_QUERY };
  target.search = '';
  const socket: SocketV4 = ioV4(target.href, {
    query,
    transports: ['websocket'],
    forceNew: true,
    reconnection: true,
    reconnectionDelay: o.reconnectionDelayMs,
    reconnectionDelayMax: o.reconnectionDelayMaxMs,
  });
  socket.on('connect', () => log.connected());
  for (const e of o.recordEvents) socket.on(e, (d: unknown) => log.record(e, d));
  const listen = (event: string, cb: (d: unknown) => void) => {
    const fn = (d: unknown) => cb(d);
    socket.on(event, fn);
    return () => void socket.off(event, fn);
  };
  const client: LegacyClient = {
    kind: 'socket.io-client@4',
    async request(method, url, data, headers) {
      const verb = method.toLowerCase();
      const res = (await socket
        .timeout(o.requestTimeoutMs)
        .emitWithAck(verb, { method: verb, url, headers: requestHeaders(o.token, headers), data: data ?? {} })) as {
        statusCode: number;
        body: unknown;
        headers?: Record<string, unknown>;
      };
      if (res && typeof res === 'object' && typeof res.statusCode !== 'number' && 'code' in res) {
        // Sails acks a request it refuses to parse (e.g. no SDK version in the handshake) with the error itself.
        const refusal = res as unknown as { code: string; details?: string };
        throw new Error(`virtual request refused by the server: ${refusal.code}${refusal.details ? `: ${refusal.details}` : ''}`);
      }
      if (!res || typeof res !== 'object' || typeof res.statusCode !== 'number') {
        throw new Error(`malformed virtual response to ${verb.toUpperCase()} ${url}: ${JSON.stringify(res)}`);
      }
      return { statusCode: res.statusCode, body: res.body, headers: res.headers ?? {} };
    },
    on: listen,
    waitFor: (event, predicate, timeoutMs) => log.waitFor(event, predicate, timeoutMs, (cb) => listen(event, cb)),
    received: (event) => log.received(event),
    connectCount: () => log.connectCount(),
    waitForConnectCount: (n, ms) => log.waitForConnectCount(n, ms),
    isConnected: () => socket.connected,
    async close() {
      socket.disconnect();
    },
  };
  try {
    await log.waitForConnectCount(1, o.connectTimeoutMs);
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}

/** Both client stacks, for suites that run every scenario with each. */
export const LEGACY_CLIENT_KINDS: ReadonlyArray<{ kind: LegacyClientKind; connect: (o: LegacyClientOptions) => Promise<LegacyClient> }> = [
  { kind: 'sails.io.js@1.2.1+socket.io-client@2', connect: connectSailsIoClient },
  { kind: 'socket.io-client@4', connect: connectSocketIo4Client },
];
