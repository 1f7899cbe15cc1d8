/**
 * A client of Bifrost's native protocol (`ws` on `${gateway}/ws`), as the
 * checks use it: send a frame with an id and wait for the answer carrying the
 * same id; collect `event` frames so a check can wait for one.
 */
import WebSocket from 'ws';

export interface EventFrame {
  op: 'event';
  topic: string;
  event: string;
  offset?: string;
  data: unknown;
}

export interface ResponseFrame {
  id: number;
  op: 'response' | 'ok' | 'error' | 'pong';
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
  code?: string;
  message?: string;
  [k: string]: unknown;
}

export class NativeSession {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (f: ResponseFrame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly events: EventFrame[] = [];
  private readonly eventWaiters = new Set<() => void>();
  private closedReason?: string;

  private constructor(private readonly ws: WebSocket, readonly url: string) {
    ws.on('message', (raw) => this.onMessage(raw.toString()));
    ws.on('close', (code, reason) => {
      this.closedReason = `socket closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(this.closedReason));
      }
      this.pending.clear();
      for (const w of this.eventWaiters) w();
    });
  }

  /**
   * Opens `${gatewayUrl}/ws` with the token in `Authorization: Bearer`. A node
   * that answers 503 (draining or overloaded) is retried after its
   * Retry-After (at most 2 s), up to `attempts` times.
   */
  static async open(gatewayUrl: string, token: string, timeoutMs = 5000, attempts = 3): Promise<NativeSession> {
    const url = gatewayUrl.replace(/^http/, 'ws').replace(/\/+$/, '') + '/ws';
    for (let attempt = 1; ; attempt++) {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: timeoutMs });
      const outcome = await new Promise<{ ok: true } | { ok: false; status?: number; retryAfter?: number; message: string }>((resolve) => {
        ws.once('open', () => resolve({ ok: true }));
        ws.once('unexpected-response', (_req, res) => {
          const retryAfter = Number(res.headers['retry-after']);
          res.resume();
          resolve({ ok: false, status: res.statusCode, retryAfter: Number.isFinite(retryAfter) ? retryAfter : 1, message: `${url} refused the upgrade with HTTP ${res.statusCode}` });
        });
        ws.once('error', (err) => resolve({ ok: false, message: `${url}: ${(err as NodeJS.ErrnoException).code ?? err.message}` }));
      });
      if (outcome.ok) return new NativeSession(ws, url);
      ws.terminate();
      if (outcome.status !== 503 || attempt >= attempts) throw new Error(outcome.message);
      await new Promise((r) => setTimeout(r, Math.min(2, outcome.retryAfter ?? 1) * 1000));
    }
  }

  private onMessage(text: string): void {
    let frame: { op?: string; id?: number };
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.op === 'event') {
      this.events.push(frame as EventFrame);
      for (const w of this.eventWaiters) w();
      return;
    }
    if (typeof frame.id === 'number') {
      const p = this.pending.get(frame.id);
      if (p) {
        clearTimeout(p.timer);
        this.pending.delete(frame.id);
        p.resolve(frame as ResponseFrame);
      }
    }
  }

  /** Sends a frame (an id is added) and resolves with the frame answering it. */
  send(frame: Record<string, unknown>, timeoutMs = 5000): Promise<ResponseFrame> {
    if (this.closedReason) return Promise.reject(new Error(this.closedReason));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to ${String(frame.op)} frame ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, ...frame }));
    });
  }

  /** Resolves with the first event (already received or arriving) that matches, or null after timeoutMs. */
  waitForEvent(match: (e: EventFrame) => boolean, timeoutMs: number): Promise<EventFrame | null> {
    return new Promise((resolve) => {
      const check = () => {
        const found = this.events.find(match);
        if (found || this.closedReason) {
          finish(found ?? null);
          return true;
        }
        return false;
      };
      const finish = (e: EventFrame | null) => {
        clearTimeout(timer);
        this.eventWaiters.delete(onEvent);
        resolve(e);
      };
      const onEvent = () => void check();
      const timer = setTimeout(() => finish(null), timeoutMs);
      this.eventWaiters.add(onEvent);
      check();
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 1000);
      this.ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.ws.close(1000);
    });
  }
}
