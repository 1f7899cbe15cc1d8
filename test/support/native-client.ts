/** A native-protocol test client on the real `ws` library, with a frame inbox to wait on. */
import WebSocket from 'ws';

export type Frame = Record<string, unknown> & { op: string; id?: number | string };

export class NativeClient {
  readonly frames: Frame[] = [];
  readonly events: Frame[] = [];
  closeCode: number | undefined;
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private nextId = 1;
  private closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as Frame;
      this.frames.push(f);
      if (f.op === 'event') this.events.push(f);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(f)) return true;
        w.resolve(f);
        return false;
      });
    });
    ws.on('error', () => {});
    this.closed = new Promise((r) =>
      ws.on('close', (code) => {
        this.closeCode = code;
        r(code);
      }),
    );
  }

  static async connect(url: string, token?: string, opts: { header?: boolean } = {}): Promise<NativeClient> {
    const u = new URL(url.replace(/^http/, 'ws') + (url.endsWith('/ws') ? '' : '/ws'));
    const headers: Record<string, string> = {};
    if (token && opts.header) headers.authorization = `Bearer ${token}`;
    else if (token) u.searchParams.set('token', token);
    const ws = new WebSocket(u, { headers });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused with ${res.statusCode}`), { statusCode: res.statusCode })));
      ws.once('error', reject);
    });
    return new NativeClient(ws);
  }

  send(frame: Record<string, unknown>): number | string {
    const id = (frame.id as number | string | undefined) ?? this.nextId++;
    this.ws.send(JSON.stringify({ id, ...frame }));
    return id;
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  waitFor(pred: (f: Frame) => boolean, timeoutMs = 5000, label = 'frame'): Promise<Frame> {
    const found = this.frames.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (f: Frame) => (clearTimeout(t), resolve(f)) };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out waiting for ${label}; last frames: ${JSON.stringify(this.frames.slice(-3))}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Sends a frame and waits for the reply with the same id. */
  async call(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
    const id = this.send(frame);
    return this.waitFor((f) => f.id === id, timeoutMs, `reply to ${String(frame.op)} #${id}`);
  }

  async waitEvents(n: number, timeoutMs = 10_000): Promise<Frame[]> {
    const end = Date.now() + timeoutMs;
    while (this.events.length < n) {
      if (Date.now() > end) throw new Error(`expected ${n} events, got ${this.events.length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.events;
  }

  waitClose(timeoutMs = 10_000): Promise<number> {
    return Promise.race([this.closed, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('socket did not close in time')), timeoutMs))]);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Tries an upgrade and returns the HTTP status it was refused with (or 101 when accepted). */
export async function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers });
  return new Promise((resolve) => {
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', () => resolve(0));
  });
}
