/**
 * A client for the shim's admin API (proxy/admin.ts): the rollout snapshot
 * (`GET /api/rollout`), drains (`POST /api/drain`, bearer admin token) and the
 * Prometheus text (`GET /metrics`). Every call has a timeout; failures become
 * one-line errors naming the URL.
 */
import { DEV_ADMIN_TOKEN } from '../../proxy/shim-defaults.ts';

/** What `GET /api/rollout` answers (the fields the CLI reads). */
export interface ShimRolloutSnapshot {
  source: 'file' | 'launchdarkly';
  flagsFile: string | null;
  mode: string;
  percent: number | null;
  bucketBy: string | null;
  version: number | null;
  decisions: { sync: number; bifrost: number; byReason: Record<string, number> };
  connections: {
    sync: number;
    bifrost: number;
    websocket: number;
    polling: number;
    nodes: { id: string; url: string; connections: number; loadFactor: number | null; draining: boolean; reachable: boolean | null }[];
  };
  drain: { policy: string; rate: number; queued: number; closed: number };
  flagReloads: { ok: number; errors: number; lastError: string | null };
  /** Decisions and upgrade outcomes per backend over the last `windowSeconds` (absent from older shims). */
  recent?: ShimRecentActivity;
  /** Where the shim sends Sync traffic (absent from older shims). */
  syncUrl?: string;
  /** Whether the shim's flags have loaded; while not, every user goes to Sync (absent from older shims). */
  flagSource?: { state: string; ready: boolean; error: string | null; since: string };
}

/** `recent` of `GET /api/rollout`. */
export interface ShimRecentActivity {
  windowSeconds: number;
  decisions: { sync: number; bifrost: number };
  upgrades: { sync: { ok: number; failed: number }; bifrost: { ok: number; failed: number } };
}

export interface DrainAnswer {
  queued: number;
  rate: number;
  scope: string;
}

export class ShimAdminError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShimAdminError';
  }
}

/** The admin token from BIFROST_ADMIN_TOKEN, or the shim's dev default. */
export function adminTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.BIFROST_ADMIN_TOKEN || DEV_ADMIN_TOKEN;
}

/** The default admin URL: http://127.0.0.1:${BIFROST_ADMIN_PORT || 9090}. */
export function defaultAdminUrl(env: NodeJS.ProcessEnv = process.env): string {
  return `http://127.0.0.1:${env.BIFROST_ADMIN_PORT || 9090}`;
}

export class ShimAdminClient {
  readonly url: string;

  constructor(
    url: string,
    private readonly token: string,
    private readonly timeoutMs = 3000,
  ) {
    this.url = url.replace(/\/+$/, '');
  }

  private async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (method !== 'GET') {
      headers.authorization = `Bearer ${this.token}`;
      headers['content-type'] = 'application/json';
    }
    try {
      return await fetch(this.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
      throw new ShimAdminError(`shim admin API unreachable at ${this.url} (${cause})`);
    }
  }

  private async failure(res: Response, what: string): Promise<ShimAdminError> {
    const text = await res.text().catch(() => '');
    let msg = text.slice(0, 200);
    try {
      const j = JSON.parse(text) as { error?: { message?: string } };
      if (j.error?.message) msg = j.error.message;
    } catch {
      // keep the text
    }
    return new ShimAdminError(`shim admin API ${what} failed at ${this.url}: ${res.status} ${msg}`);
  }

  async rollout(): Promise<ShimRolloutSnapshot> {
    const res = await this.call('GET', '/api/rollout');
    if (!res.ok) throw await this.failure(res, 'GET /api/rollout');
    return (await res.json()) as ShimRolloutSnapshot;
  }

  /** Asks the shim to move live connections to their (new) backend, per its drain policy. */
  async drain(body: { scope?: 'changed' | 'all'; backend?: 'sync' | 'bifrost' } = {}): Promise<DrainAnswer> {
    const res = await this.call('POST', '/api/drain', body);
    if (!res.ok) throw await this.failure(res, 'POST /api/drain');
    return (await res.json()) as DrainAnswer;
  }

  async metricsText(): Promise<string> {
    const res = await this.call('GET', '/metrics');
    if (!res.ok) throw await this.failure(res, 'GET /metrics');
    return res.text();
  }
}

/**
 * The shim replicas a rollout command talks to: one client, or one per
 * `--admin-url` when several shim replicas sit behind a load balancer (each
 * routes, counts and drains only its own connections).
 */
export type ShimAdmins = ShimAdminClient | readonly ShimAdminClient[];

export function replicasOf(admins: ShimAdmins): readonly ShimAdminClient[] {
  return admins instanceof ShimAdminClient ? [admins] : admins;
}

/** The replicas' URLs for a message: `http://a:9090` or `http://a:9090, http://b:9090`. */
export function describeReplicas(admins: ShimAdmins): string {
  return replicasOf(admins)
    .map((r) => r.url)
    .join(', ');
}
