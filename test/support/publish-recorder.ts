/**
 * A small real HTTP server standing in for Bifrost's private API in bridge
 * tests: it records every `POST /v1/publish` and answers what the test says
 * (e.g. 503 for the first N calls).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedPublish {
  topic: string;
  event: string;
  data: unknown;
  idempotencyKey: string;
  authorization: string | undefined;
  /** The status this call was answered with. */
  status: number;
}

export interface PublishRecorder {
  readonly url: string;
  readonly port: number;
  /** Every call, in arrival order (accepted or not). */
  readonly calls: RecordedPublish[];
  /** Calls answered 2xx. */
  accepted(): RecordedPublish[];
  /** Decides the status of each call (default 200); 'hang' never answers (the call is recorded with status 0). */
  respond: (call: Omit<RecordedPublish, 'status'>, index: number) => number | 'hang';
  /** Resolves once `n` calls were accepted. */
  waitForAccepted(n: number, timeoutMs: number): Promise<RecordedPublish[]>;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Starts a recorder on `port` (0 = random) of 127.0.0.1. */
export async function startPublishRecorder(port = 0): Promise<PublishRecorder> {
  const calls: RecordedPublish[] = [];
  let waiters: Array<() => void> = [];
  const recorder: PublishRecorder = {
    url: '',
    port: 0,
    calls,
    accepted: () => calls.filter((c) => c.status >= 200 && c.status < 300),
    respond: () => 200,
    waitForAccepted(n, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (recorder.accepted().length >= n) {
            clearTimeout(timer);
            waiters = waiters.filter((w) => w !== check);
            resolve(recorder.accepted());
          }
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== check);
          reject(new Error(`only ${recorder.accepted().length} of ${n} publishes accepted within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(check);
        check();
      });
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server: Server = createServer(async (req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/publish') {
      res.writeHead(404).end();
      return;
    }
    const raw = await readBody(req);
    const body = JSON.parse(raw) as { topic: string; event: string; data: unknown; idempotencyKey: string };
    const call = { topic: body.topic, event: body.event, data: body.data, idempotencyKey: body.idempotencyKey, authorization: req.headers.authorization };
    const decision = recorder.respond(call, calls.length);
    if (decision === 'hang') {
      calls.push({ ...call, status: 0 });
      return; // never answered; close() cuts the connection
    }
    const status = decision;
    calls.push({ ...call, status });
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(status < 300 ? JSON.stringify({ offset: String(calls.length), epoch: 'test' }) : JSON.stringify({ error: 'refused by test' }));
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  Object.assign(recorder, { url: `http://127.0.0.1:${actual}`, port: actual });
  return recorder;
}

/** A port that nothing listens on right now (bound, then released). */
export async function unusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
