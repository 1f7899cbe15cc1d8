/**
 * A small client for LaunchDarkly's REST API (v2), enough to read a flag and
 * change it with a **semantic patch**:
 *
 * - `GET  /api/v2/flags/{projectKey}/{flagKey}?env={environmentKey}`
 * - `PATCH /api/v2/flags/{projectKey}/{flagKey}` with
 *   `Content-Type: application/json; domain-model=launchdarkly.semanticpatch`
 *   and `{environmentKey, comment, instructions: [...]}`.
 *
 * Auth is the access token itself in `Authorization` (LaunchDarkly takes the
 * token without a `Bearer` prefix). The base URL is `https://app.launchdarkly.com`
 * unless `LD_BASE_URI` says otherwise (tests point it at a local server).
 *
 * Errors become one clear line (LaunchDarklyError, a CliError): 401/403/404/400
 * are configuration problems (exit 2), 409 and server errors exit 1. A 429 is
 * retried after the server's reset time: `X-Ratelimit-Reset` (epoch ms) or
 * `Retry-After` (seconds or an HTTP date), up to `maxRetries` times; a 5xx or
 * a network error (LaunchDarkly or the way there briefly down) is retried with
 * exponential backoff (0.5 s, 1 s, 2 s, …), up to `maxRetries` times too.
 */
import { CliError, EXIT_CHECK_FAILED, EXIT_USAGE } from '../output.ts';

export const DEFAULT_LD_BASE_URI = 'https://app.launchdarkly.com';
export const SEMANTIC_PATCH_CONTENT_TYPE = 'application/json; domain-model=launchdarkly.semanticpatch';

/** The parts of LaunchDarkly's flag representation this kit reads. */
export interface LdFlag {
  key: string;
  _version?: number;
  variations: { _id: string; value: unknown; name?: string }[];
  environments?: Record<
    string,
    {
      on?: boolean;
      _version?: number;
      offVariation?: number;
      fallthrough?: {
        variation?: number;
        rollout?: { variations: { variation: number; weight: number }[]; bucketBy?: string; contextKind?: string };
      };
      /** Context keys served a variation individually (`contextTargets`: other context kinds; entries may list no key). */
      targets?: { values: string[]; variation: number; contextKind?: string }[];
      contextTargets?: { values: string[]; variation: number; contextKind?: string }[];
      /** Targeting rules: a variation or a rollout of their own. */
      rules?: { _id?: string; description?: string; ref?: string; variation?: number; rollout?: { variations: { variation: number; weight: number }[] } }[];
    }
  >;
}

export interface LaunchDarklyRestOptions {
  token: string;
  projectKey: string;
  environmentKey: string;
  /** Default https://app.launchdarkly.com. */
  baseUri?: string;
  /** Retries of a 429, a 5xx or a network error before giving up (default 5). */
  maxRetries?: number;
  /** Longest single wait for a rate limit reset (default 60 s). */
  maxWaitMs?: number;
  /** First wait before retrying a network error or a 5xx (default 500 ms, doubling). */
  retryBaseMs?: number;
  /** Timeout of one HTTP call (default 15 s). */
  timeoutMs?: number;
  /** Where retry notes go (default: nowhere). */
  note?: (line: string) => void;
}

/** A LaunchDarkly API call that failed, in one line. */
export class LaunchDarklyError extends CliError {
  constructor(
    message: string,
    readonly status: number,
    exitCode: number,
  ) {
    super(message, exitCode);
    this.name = 'LaunchDarklyError';
  }
}

/** The LaunchDarkly settings from the environment, or undefined when live mode is not configured. */
export function launchDarklyOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): LaunchDarklyRestOptions | undefined {
  const token = env.LD_API_TOKEN;
  const projectKey = env.LD_PROJECT_KEY;
  const environmentKey = env.LD_ENVIRONMENT_KEY;
  const set = [token, projectKey, environmentKey].filter((v) => v !== undefined && v !== '').length;
  if (set === 0) return undefined;
  if (set < 3) {
    const missing = [['LD_API_TOKEN', token], ['LD_PROJECT_KEY', projectKey], ['LD_ENVIRONMENT_KEY', environmentKey]]
      .filter(([, v]) => !v)
      .map(([k]) => k)
      .join(', ');
    throw new CliError(`live LaunchDarkly mode needs LD_API_TOKEN, LD_PROJECT_KEY and LD_ENVIRONMENT_KEY; missing: ${missing}`, EXIT_USAGE);
  }
  return { token: token!, projectKey: projectKey!, environmentKey: environmentKey!, baseUri: env.LD_BASE_URI || DEFAULT_LD_BASE_URI };
}

/**
 * How long to wait before retrying a 429, from the response headers:
 * `X-Ratelimit-Reset` (epoch milliseconds) first, then `Retry-After` (seconds
 * or an HTTP date). Undefined when neither is usable.
 */
export function rateLimitWaitMs(headers: Headers, now: number = Date.now()): number | undefined {
  const reset = headers.get('x-ratelimit-reset');
  if (reset && /^\d+$/.test(reset.trim())) return Math.max(0, Number(reset) - now);
  const after = headers.get('retry-after');
  if (after) {
    if (/^\d+(\.\d+)?$/.test(after.trim())) return Math.max(0, Number(after) * 1000);
    const at = Date.parse(after);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  return undefined;
}

async function errorDetail(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { code?: string; message?: string };
    if (body && (body.code || body.message)) return [body.code, body.message].filter(Boolean).join(': ');
  } catch {
    // not JSON: fall through
  }
  return text.trim().split('\n')[0]?.slice(0, 200) || res.statusText;
}

export class LaunchDarklyRest {
  private readonly baseUri: string;
  private readonly maxRetries: number;
  private readonly maxWaitMs: number;
  private readonly timeoutMs: number;
  private readonly retryBaseMs: number;

  constructor(private readonly opts: LaunchDarklyRestOptions) {
    this.baseUri = (opts.baseUri || DEFAULT_LD_BASE_URI).replace(/\/+$/, '');
    this.maxRetries = opts.maxRetries ?? 5;
    this.maxWaitMs = opts.maxWaitMs ?? 60_000;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.retryBaseMs = opts.retryBaseMs ?? 500;
  }

  get projectKey(): string {
    return this.opts.projectKey;
  }

  get environmentKey(): string {
    return this.opts.environmentKey;
  }

  private flagPath(flagKey: string): string {
    return `/api/v2/flags/${encodeURIComponent(this.opts.projectKey)}/${encodeURIComponent(flagKey)}`;
  }

  /** Reads a flag with its configuration in our environment. */
  async getFlag(flagKey: string): Promise<LdFlag> {
    const path = `${this.flagPath(flagKey)}?env=${encodeURIComponent(this.opts.environmentKey)}`;
    return (await this.call('GET', path, undefined, `read flag "${flagKey}"`)) as LdFlag;
  }

  /** Applies semantic patch instructions to a flag in our environment. */
  async patchFlag(flagKey: string, instructions: Record<string, unknown>[], comment: string): Promise<LdFlag> {
    const body = { environmentKey: this.opts.environmentKey, comment, instructions };
    return (await this.call('PATCH', this.flagPath(flagKey), body, `change flag "${flagKey}"`)) as LdFlag;
  }

  private async call(method: 'GET' | 'PATCH', path: string, body: unknown, what: string): Promise<unknown> {
    const headers: Record<string, string> = { Authorization: this.opts.token, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = SEMANTIC_PATCH_CONTENT_TYPE;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(this.baseUri + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
        if (attempt < this.maxRetries) {
          const wait = this.backoffMs(attempt);
          this.opts.note?.(`LaunchDarkly unreachable (${cause}): retrying in ${(wait / 1000).toFixed(1)} s (attempt ${attempt + 2} of ${this.maxRetries + 1})`);
          await new Promise((r) => setTimeout(r, wait));
          continue;
        }
        throw new LaunchDarklyError(`LaunchDarkly unreachable at ${this.baseUri} (${cause}) after ${attempt + 1} attempts: could not ${what}`, 0, EXIT_CHECK_FAILED);
      }
      if (res.ok) return res.status === 204 ? {} : await res.json();
      if (res.status >= 500 && attempt < this.maxRetries) {
        // A semantic patch sets absolute weights: sending it again is harmless.
        const wait = this.backoffMs(attempt);
        const detail = await errorDetail(res);
        this.opts.note?.(`LaunchDarkly server error (${res.status} ${detail}): retrying in ${(wait / 1000).toFixed(1)} s (attempt ${attempt + 2} of ${this.maxRetries + 1})`);
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      if (res.status === 429 && attempt < this.maxRetries) {
        const wait = Math.min(this.maxWaitMs, rateLimitWaitMs(res.headers) ?? 1000 * 2 ** attempt);
        await res.body?.cancel().catch(() => {});
        this.opts.note?.(`LaunchDarkly rate limit (429): retrying in ${(wait / 1000).toFixed(1)} s (attempt ${attempt + 2} of ${this.maxRetries + 1})`);
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      const detail = await errorDetail(res);
      throw this.errorFor(res.status, detail, what, attempt);
    }
  }

  /** Exponential backoff with jitter for network errors and 5xx: ~0.5 s, 1 s, 2 s, … capped at maxWaitMs. */
  private backoffMs(attempt: number): number {
    const base = Math.min(this.maxWaitMs, this.retryBaseMs * 2 ** attempt);
    return Math.round(base / 2 + Math.random() * (base / 2));
  }

  private errorFor(status: number, detail: string, what: string, attempts: number): LaunchDarklyError {
    const where = `project "${this.opts.projectKey}", environment "${this.opts.environmentKey}"`;
    switch (status) {
      case 401:
        return new LaunchDarklyError(`LaunchDarkly rejected the access token (401 ${detail}): check LD_API_TOKEN`, status, EXIT_USAGE);
      case 403:
        return new LaunchDarklyError(`LaunchDarkly forbids this token to ${what} in ${where} (403 ${detail}): give LD_API_TOKEN writer access`, status, EXIT_USAGE);
      case 404:
        return new LaunchDarklyError(`LaunchDarkly found nothing to ${what} in ${where} (404 ${detail}): check LD_PROJECT_KEY, LD_ENVIRONMENT_KEY and the flag key`, status, EXIT_USAGE);
      case 409:
        return new LaunchDarklyError(`LaunchDarkly refused to ${what} (409 ${detail}): the flag changed meanwhile or a pending change conflicts; check it in LaunchDarkly and retry`, status, EXIT_CHECK_FAILED);
      case 429:
        return new LaunchDarklyError(`LaunchDarkly kept rate limiting (429 ${detail}) after ${attempts + 1} attempts: could not ${what}; retry later`, status, EXIT_CHECK_FAILED);
      case 400:
        return new LaunchDarklyError(`LaunchDarkly rejected the request to ${what} (400 ${detail})`, status, EXIT_USAGE);
      default:
        return new LaunchDarklyError(`LaunchDarkly failed to ${what} (${status} ${detail})`, status, status >= 500 ? EXIT_CHECK_FAILED : EXIT_USAGE);
    }
  }
}
