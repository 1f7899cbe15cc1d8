/**
 * The client generator: one process, many WebSocket clients (`ws`), driven by
 * the bench over IPC. It is kept light so it does not hide server differences:
 * no JSON parsing on the hot path (the timestamp is scanned out of the frame
 * bytes), no per-message allocation beyond what `ws` does.
 *
 * Protocols:
 * - `native`  Bifrost `/ws`: token per connection, then `subscribe` to its topic; ready on `"op":"ok"`.
 * - `socketio` engine.io 4 over WebSocket (`?EIO=4&transport=websocket`): `0{…}` → `40`; ready on `40{`; answers pings.
 * - `raw`     a bare WebSocket; ready on open.
 *
 * A ready client's frames are read straight off its TCP socket (see
 * frame-reader.ts); `ws` still makes the handshake, sends (pongs, engine.io
 * `3`, echo messages) and closes.
 */
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { signAccessToken } from '../../gateway/token.ts';
import { signRouteToken, ROUTE_TOKEN_PARAM } from '../../proxy/route-token.ts';
import { newHistogram, summarize, type LatencySummary } from './histogram.ts';
import { ServerFrameReader } from './frame-reader.ts';
import { nowMs, scanTimestamp } from './frames.ts';
import { serveRpc } from './worker-rpc.ts';

export type ClientProtocol = 'native' | 'socketio' | 'raw';

export interface ConnectGroup {
  protocol: ClientProtocol;
  /** Base URL: `ws://127.0.0.1:P/ws`, `ws://127.0.0.1:P/socket.io/`, `ws://127.0.0.1:P/`. */
  url: string;
  count: number;
  /** Connection i gets topics[i % topics.length]. */
  topics?: string[];
  /** native: topic query parameter is not used; the client subscribes with a frame. socketio/raw: `?topic=`. */
  topicParam?: string;
  /** native: HS256 secret to sign one access token per connection (user `<userPrefix><i>`, team from `team:<id>` topics). */
  tokenSecret?: string;
  /** socketio through the shim: secret of `bf_route` tokens. */
  routeSecret?: string;
  userPrefix?: string;
}

export interface ConnectArgs {
  groups: ConnectGroup[];
  /** Attempts in flight at once. */
  concurrency: number;
  /** Per attempt, ms. */
  timeoutMs?: number;
  /** Retry refused attempts (503, reset, close before ready) with jittered backoff. */
  retry?: { maxAttempts: number; minDelayMs: number; maxDelayMs: number };
}

export interface ConnectResult {
  opened: number;
  failed: number;
  /** Attempts refused and retried. */
  retries: number;
  /** Clients that needed at least one retry. */
  retriedClients: number;
  durationMs: number;
  perSec: number;
  /** Most clients that became ready within one second. */
  peakPerSec: number;
  handshake: LatencySummary;
  errors: Record<string, number>;
}

interface Conn {
  ws: WebSocket;
  protocol: ClientProtocol;
  ready: boolean;
}

const conns = new Set<Conn>();
let received = 0;
let hist = newHistogram();
/**
 * The worst latency (µs) of the events scheduled in each second since the last
 * reset, by the publisher's intended send time: a failed step shows whether one
 * stall (a second or two) or a backlog (every later second worse) broke the p99.
 */
let secondsFrom = nowMs();
let worstBySecond: number[] = [];
const MAX_SECONDS = 3600;
let echoState: { deadline: number; size: number; rtt: ReturnType<typeof newHistogram>; done: number } | null = null;
let echoPad = '';

function onEvent(buf: Buffer, start?: number, end?: number): void {
  const ts = scanTimestamp(buf, start, end);
  if (ts < 0) return;
  received++;
  const lat = (nowMs() - ts) * 1000;
  hist.recordValue(lat < 1 ? 1 : lat);
  const sec = Math.min(MAX_SECONDS, Math.max(0, Math.floor((ts - secondsFrom) / 1000)));
  while (worstBySecond.length <= sec) worstBySecond.push(0);
  if (lat > worstBySecond[sec]!) worstBySecond[sec] = lat;
}

function echoMessage(): string {
  return `{"ts":${nowMs().toFixed(3)},"p":"${echoPad}"}`;
}

function onEcho(c: Conn, buf: Buffer, start?: number, end?: number): void {
  const st = echoState;
  if (!st) return;
  const ts = scanTimestamp(buf, start, end);
  if (ts < 0) return;
  const now = nowMs();
  if (now > st.deadline) return;
  st.done++;
  st.rtt.recordValue(Math.max(1, (now - ts) * 1000));
  c.ws.send(echoMessage());
}

/** A data frame of a ready client. */
function onData(c: Conn, buf: Buffer, start: number, end: number): void {
  if (c.protocol === 'native') onEvent(buf, start, end);
  else if (c.protocol === 'socketio') {
    if (end - start === 1 && buf[start] === 50 /* '2' ping */) c.ws.send('3');
    else if (buf[start] === 52 && buf[start + 1] === 50) onEvent(buf, start, end); // "42[...]"
  } else if (echoState) onEcho(c, buf, start, end);
  else onEvent(buf, start, end);
}

/**
 * One read buffer for every socket read directly: Node reads into it and calls
 * back synchronously, so the frame reader copies only a frame split over reads.
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Node's `onread` mode for an already connected socket: reads go into a
 * user buffer and to a callback, bypassing the Readable stream (no Buffer per
 * read, no 'data' event, no nextTick per read). `net.connect({ onread })` sets
 * this up at creation; `ws` makes its own sockets, so the same fields are set
 * afterwards. They are Node internals: where they are missing, false is
 * returned and the caller reads through 'data' events instead.
 */
function readIntoSharedBuffer(socket: Duplex, onRead: (nread: number, buf: Buffer) => void): boolean {
  const symbols = Object.getOwnPropertySymbols(socket);
  const kBuffer = symbols.find((x) => x.description === 'kBuffer');
  const kBufferCb = symbols.find((x) => x.description === 'kBufferCb');
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Uint8Array) => void } })._handle;
  if (!kBuffer || !kBufferCb || typeof handle?.useUserBuffer !== 'function' || socket.readableLength > 0) return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  fields[kBufferCb] = onRead;
  fields[kBuffer] = SHARED_READ_BUFFER;
  handle.useUserBuffer(SHARED_READ_BUFFER);
  return true;
}

/**
 * From now on the client's frames are read off its socket by a
 * ServerFrameReader instead of the `ws` receiver. A client whose receiver
 * already holds part of a frame keeps the `ws` path (its listeners stay).
 */
function readDirectly(c: Conn): void {
  const internals = c.ws as unknown as { _socket?: Duplex; _receiver?: { _bufferedBytes?: number } };
  const socket = internals._socket;
  if (!socket || internals._receiver?._bufferedBytes) return;
  const reader = new ServerFrameReader((opcode, buf, start, end) => {
    if (opcode <= 2) onData(c, buf, start, end);
    else if (opcode === 9) c.ws.pong(buf.subarray(start, end));
    else if (opcode === 8) c.ws.terminate();
  });
  socket.removeAllListeners('data');
  const direct = readIntoSharedBuffer(socket, (nread, buf) => {
    try {
      reader.push(buf, nread, true);
    } catch {
      c.ws.terminate();
    }
  });
  if (direct) return;
  socket.on('data', (chunk: Buffer) => {
    try {
      reader.push(chunk);
    } catch {
      c.ws.terminate();
    }
  });
}

function topicOf(g: ConnectGroup, i: number): string | undefined {
  return g.topics?.length ? g.topics[i % g.topics.length] : undefined;
}

async function urlFor(g: ConnectGroup, i: number): Promise<string> {
  const u = new URL(g.url);
  const topic = topicOf(g, i);
  const user = `${g.userPrefix ?? 'u'}${i}`;
  const team = topic?.startsWith('team:') ? topic.slice(5) : 't0';
  if (g.protocol === 'native' && g.tokenSecret) u.searchParams.set('token', await signAccessToken(g.tokenSecret, { userId: user, teamId: team }, '2h'));
  if (g.protocol === 'socketio') {
    u.searchParams.set('EIO', '4');
    u.searchParams.set('transport', 'websocket');
  }
  if (g.routeSecret) u.searchParams.set(ROUTE_TOKEN_PARAM, signRouteToken(g.routeSecret, { userId: user, teamId: team }));
  if (topic && g.topicParam) u.searchParams.set(g.topicParam, topic);
  return u.toString();
}

/** One attempt: resolves with the connection once ready, rejects with a short reason. */
function attempt(g: ConnectGroup, url: string, topic: string | undefined, timeoutMs: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: timeoutMs });
    const c: Conn = { ws, protocol: g.protocol, ready: false };
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners('message');
      ws.terminate();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail('timeout'), timeoutMs);
    const ok = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.ready = true;
      conns.add(c);
      readDirectly(c);
      resolve(c);
    };
    ws.on('error', (err) => fail((err as NodeJS.ErrnoException).code ?? err.message.slice(0, 60)));
    ws.on('unexpected-response', (_req, res) => fail(`http ${res.statusCode}`));
    ws.on('close', () => {
      conns.delete(c);
      fail('closed before ready');
    });
    ws.on('open', () => {
      if (g.protocol === 'raw') ok();
      else if (g.protocol === 'native' && topic) ws.send(`{"id":1,"op":"subscribe","topic":${JSON.stringify(topic)}}`);
      else if (g.protocol === 'native') ok();
    });
    if (g.protocol === 'native') {
      ws.on('message', (data: Buffer) => {
        if (c.ready) return onEvent(data);
        const s = data.toString();
        if (s.includes('"op":"ok"')) ok();
        else if (s.includes('"op":"error"')) fail(`subscribe refused: ${s.slice(0, 80)}`);
      });
    } else if (g.protocol === 'socketio') {
      ws.on('message', (data: Buffer) => {
        const b0 = data[0];
        if (b0 === 50 /* '2' ping */ && data.length === 1) return ws.send('3');
        if (c.ready) {
          if (b0 === 52 && data[1] === 50) onEvent(data); // "42[...]"
          return;
        }
        if (b0 === 48 /* '0' open */) ws.send('40');
        else if (b0 === 52 && data[1] === 48) ok(); // "40{sid}"
        else if (b0 === 52 && data[1] === 52) fail(`connect_error ${data.toString().slice(0, 80)}`);
      });
    } else {
      ws.on('message', (data: Buffer) => {
        if (echoState) onEcho(c, data);
        else onEvent(data);
      });
    }
  });
}

async function connect(args: ConnectArgs): Promise<ConnectResult> {
  const timeoutMs = args.timeoutMs ?? 15_000;
  const jobs: { g: ConnectGroup; i: number }[] = [];
  for (const g of args.groups) for (let i = 0; i < g.count; i++) jobs.push({ g, i });
  const urls = await Promise.all(jobs.map(({ g, i }) => urlFor(g, i)));
  const hs = newHistogram();
  const errors: Record<string, number> = {};
  const readyAt: number[] = [];
  let opened = 0;
  let failed = 0;
  let retries = 0;
  let retriedClients = 0;
  let nextJob = 0;
  const t0 = nowMs();
  const maxAttempts = args.retry?.maxAttempts ?? 1;
  const runOne = async (j: number): Promise<void> => {
    const { g, i } = jobs[j]!;
    for (let a = 1; a <= maxAttempts; a++) {
      const start = nowMs();
      try {
        await attempt(g, urls[j]!, topicOf(g, i), timeoutMs);
        const end = nowMs();
        hs.recordValue(Math.max(1, (end - start) * 1000));
        readyAt.push(end - t0);
        opened++;
        if (a > 1) retriedClients++;
        return;
      } catch (err) {
        const why = (err as Error).message;
        errors[why] = (errors[why] ?? 0) + 1;
        if (a === maxAttempts) break;
        retries++;
        const r = args.retry!;
        const delay = Math.min(r.maxDelayMs, r.minDelayMs * 2 ** (a - 1)) * (0.5 + Math.random() * 0.5);
        await new Promise((res) => setTimeout(res, delay));
      }
    }
    failed++;
  };
  const lanes = Math.max(1, Math.min(args.concurrency, jobs.length));
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (;;) {
        const j = nextJob++;
        if (j >= jobs.length) return;
        await runOne(j);
      }
    }),
  );
  const durationMs = nowMs() - t0;
  const buckets = new Map<number, number>();
  for (const t of readyAt) buckets.set(Math.floor(t / 1000), (buckets.get(Math.floor(t / 1000)) ?? 0) + 1);
  return {
    opened,
    failed,
    retries,
    retriedClients,
    durationMs: Math.round(durationMs),
    perSec: Math.round((opened / durationMs) * 1000),
    peakPerSec: Math.max(0, ...buckets.values()),
    handshake: summarize(hs),
    errors,
  };
}

serveRpc({
  connect,
  /** Messages received (and their latency) since the last reset. */
  snapshot(args: { reset?: boolean }) {
    const r = { received, latency: summarize(hist), worstMsBySecond: worstBySecond.map((us) => Math.round(us / 100) / 10), open: conns.size };
    if (args?.reset) {
      received = 0;
      hist = newHistogram();
      secondsFrom = nowMs();
      worstBySecond = [];
    }
    return r;
  },
  received: () => received,
  /** Closed-loop echo over every open raw connection: `inflight` messages each, `size` bytes. */
  async echo(args: { durationMs: number; inflight: number; size: number }) {
    echoPad = 'x'.repeat(Math.max(0, args.size - echoMessage().length));
    const st = { deadline: nowMs() + args.durationMs, size: args.size, rtt: newHistogram(), done: 0 };
    echoState = st;
    const t0 = nowMs();
    for (const c of conns) for (let k = 0; k < args.inflight; k++) c.ws.send(echoMessage());
    await new Promise((r) => setTimeout(r, args.durationMs));
    const elapsed = nowMs() - t0;
    // Let the last round trips come back before the next run starts.
    await new Promise((r) => setTimeout(r, 300));
    echoState = null;
    return { roundTrips: st.done, durationMs: Math.round(elapsed), perSec: Math.round((st.done / elapsed) * 1000), rtt: summarize(st.rtt) };
  },
  async closeAll() {
    const all = [...conns];
    conns.clear();
    await Promise.all(
      all.map(
        (c) =>
          new Promise<void>((r) => {
            if (c.ws.readyState === WebSocket.CLOSED) return r();
            c.ws.once('close', () => r());
            c.ws.terminate();
          }),
      ),
    );
    received = 0;
    hist = newHistogram();
    secondsFrom = nowMs();
    worstBySecond = [];
    return all.length;
  },
  stats: () => ({ rss: process.memoryUsage().rss, open: conns.size }),
});
