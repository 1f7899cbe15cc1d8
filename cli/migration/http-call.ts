/**
 * Plain HTTP calls the checks make (private API, Sync, shim admin API), with
 * a timeout, JSON in and out, and one-line errors that name the URL. Also the
 * `{id}` / `{nonce}` / `{now}` templating of manifest requests.
 */
import type { RequestSpec } from './manifest.ts';

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON when the response is JSON, else the text. */
  body: unknown;
}

export interface HttpCallOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  query?: Record<string, string | number | boolean>;
  timeoutMs?: number;
}

/** Thrown when the peer cannot be reached or does not answer in time. */
export class UnreachableError extends Error {
  constructor(readonly url: string, cause: string) {
    super(`${url} did not answer: ${cause}`);
    this.name = 'UnreachableError';
  }
}

export async function httpCall(url: string, opts: HttpCallOptions = {}): Promise<HttpResult> {
  const u = new URL(url);
  for (const [k, v] of Object.entries(opts.query ?? {})) u.searchParams.set(k, String(v));
  const headers: Record<string, string> = { accept: 'application/json', ...(opts.headers ?? {}) };
  let body: string | undefined;
  if (opts.body !== undefined && opts.body !== null) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(u, { method: opts.method ?? 'GET', headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? 5000) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${opts.timeoutMs ?? 5000} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new UnreachableError(`${opts.method ?? 'GET'} ${u.toString()}`, why);
  }
  const text = await res.text();
  let parsed: unknown = text;
  if (text && (res.headers.get('content-type') ?? '').includes('json')) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  } else if (!text) parsed = null;
  return { status: res.status, headers: Object.fromEntries(res.headers.entries()), body: parsed };
}

export interface TemplateVars {
  id?: string;
  nonce: string;
  now: string;
}

/** Replaces `{id}`, `{nonce}` and `{now}` in every string of a value. */
export function fillTemplate<T>(value: T, vars: TemplateVars): T {
  if (typeof value === 'string') {
    return value.replace(/\{(id|nonce|now)\}/g, (m, k: keyof TemplateVars) => vars[k] ?? m) as T;
  }
  if (Array.isArray(value)) return value.map((v) => fillTemplate(v, vars)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillTemplate(v, vars)])) as T;
  }
  return value;
}

/** A manifest request with its templates filled in. */
export function resolveRequest(spec: RequestSpec, vars: TemplateVars): RequestSpec {
  return fillTemplate(spec, vars);
}

/** `http://h:1/` + `/v1/x` without a double slash. */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + (path.startsWith('/') ? path : `/${path}`);
}

/** Short JSON for messages (cut at `max` characters). */
export function brief(value: unknown, max = 160): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  if (s === undefined) return 'nothing';
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
