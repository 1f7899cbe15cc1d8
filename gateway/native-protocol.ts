/**
 * The native Bifrost protocol on `/ws`: parsing and checking client frames,
 * building server frames. See docs/protocol.md.
 */
import { GatewayError } from './errors.ts';
import type { StreamPosition } from './broker.ts';

export const CLOSE_DRAIN = 1012;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_POLICY = 1008;
export const CLOSE_AUTH_EXPIRED = 4001;
export const CLOSE_SLOW_CONSUMER = 4008;

export type ClientFrame =
  | { id?: FrameId; op: 'subscribe'; topic: string; since?: StreamPosition }
  | { id?: FrameId; op: 'unsubscribe'; topic: string }
  | { id?: FrameId; op: 'request'; service: string; method: string; path: string; query?: Record<string, string>; body?: unknown; headers?: Record<string, string> }
  | { id?: FrameId; op: 'ping' };

export type FrameId = number | string;

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
/**
 * Topics are 1-200 characters without control characters. They name records
 * (`collection:<id>`), and record ids may hold spaces or punctuation.
 */
export const TOPIC_PATTERN = '^[^\\u0000-\\u001f\\u007f]{1,200}$';
const TOPIC_RE = new RegExp(TOPIC_PATTERN);

export function isValidTopic(t: unknown): t is string {
  return typeof t === 'string' && TOPIC_RE.test(t);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An `id` written as the frame's first member: a number, or a string of at most 64 characters without escapes. */
const LEADING_ID = /^\s*\{\s*"id"\s*:\s*(?:(-?\d{1,16}(?:\.\d{1,16})?)|"([^"\\]{0,64})")\s*[,}]/;

/**
 * The id of a frame that is refused before it is parsed (throttled, binary),
 * read without parsing it: only when `id` is the frame's first member (as
 * every example in docs/protocol.md writes it), from the first 128 bytes.
 * Otherwise undefined, and the error goes out without an id.
 */
export function peekFrameId(data: unknown): FrameId | undefined {
  if (!Buffer.isBuffer(data)) return undefined;
  const m = LEADING_ID.exec(data.toString('utf8', 0, Math.min(data.length, 128)));
  if (!m) return undefined;
  return m[2] !== undefined ? m[2] : Number(m[1]);
}

/** Parses one text frame; throws GatewayError('badRequest') with the reason. Carries the id when one could be read. */
export function parseClientFrame(text: string): ClientFrame {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new GatewayError('badRequest', 'frame is not valid JSON');
  }
  if (!isPlainObject(raw)) throw new GatewayError('badRequest', 'frame must be a JSON object');
  const id = raw.id;
  if (id !== undefined && !(typeof id === 'number' && Number.isFinite(id)) && !(typeof id === 'string' && id.length <= 64)) {
    throw new GatewayError('badRequest', 'id must be a finite number or a string of at most 64 characters');
  }
  const fail = (msg: string): never => {
    const e = new GatewayError('badRequest', msg);
    (e as GatewayError & { frameId?: FrameId }).frameId = id as FrameId | undefined;
    throw e;
  };
  switch (raw.op) {
    case 'ping':
      return { id: id as FrameId | undefined, op: 'ping' };
    case 'subscribe':
    case 'unsubscribe': {
      if (!isValidTopic(raw.topic)) fail('topic must be 1-200 characters without control characters');
      if (raw.op === 'unsubscribe') return { id: id as FrameId | undefined, op: 'unsubscribe', topic: raw.topic as string };
      let since: StreamPosition | undefined;
      if (raw.since !== undefined && raw.since !== null) {
        const s = raw.since;
        if (!isPlainObject(s) || typeof s.offset !== 'string' || typeof s.epoch !== 'string' || s.offset.length > 64 || s.epoch.length > 64 || !/^\d+(-\d+)?$/.test(s.offset)) {
          fail('since must be {"offset": "<offset>", "epoch": "<epoch>"} as received from the server');
        }
        since = { offset: (s as { offset: string }).offset, epoch: (s as { epoch: string }).epoch };
      }
      return { id: id as FrameId | undefined, op: 'subscribe', topic: raw.topic as string, since };
    }
    case 'request': {
      if (typeof raw.service !== 'string' || !raw.service || raw.service.length > 100) fail('service must be a non-empty string');
      const method = typeof raw.method === 'string' ? raw.method.toUpperCase() : '';
      if (!METHODS.has(method)) fail('method must be one of GET, POST, PUT, PATCH, DELETE');
      if (typeof raw.path !== 'string' || !raw.path.startsWith('/') || raw.path.length > 2048) fail('path must be a string starting with / (at most 2048 characters)');
      if (raw.query !== undefined && raw.query !== null) {
        if (!isPlainObject(raw.query) || !Object.values(raw.query).every((v) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) {
          fail('query must be an object of string, number or boolean values');
        }
      }
      if (raw.headers !== undefined && raw.headers !== null) {
        if (!isPlainObject(raw.headers) || !Object.values(raw.headers).every((v) => typeof v === 'string')) fail('headers must be an object of strings');
      }
      return {
        id: id as FrameId | undefined,
        op: 'request',
        service: raw.service as string,
        method,
        path: raw.path as string,
        query: (raw.query ?? undefined) as Record<string, string> | undefined,
        body: raw.body ?? null,
        headers: (raw.headers ?? undefined) as Record<string, string> | undefined,
      };
    }
    default:
      return fail(typeof raw.op === 'string' ? `unknown op "${raw.op.slice(0, 40)}"` : 'op is missing');
  }
}

export function errorFrame(id: FrameId | undefined, code: string, message: string): string {
  return JSON.stringify(id === undefined ? { op: 'error', code, message } : { id, op: 'error', code, message });
}

/**
 * The event frame, built by concatenation around the data JSON exactly as
 * published: built once per event per node and sent to every local subscriber.
 */
export function eventFrame(topic: string, event: string, offset: string, dataJson: string): string {
  return `{"op":"event","topic":${JSON.stringify(topic)},"event":${JSON.stringify(event)},"offset":"${offset}","data":${dataJson}}`;
}
