/**
 * A client for the shim's admin API (proxy/admin.ts): the rollout snapshot
 * (`GET /api/rollout`), drains (`POST /api/drain`, bearer admin token) and the
 * Prometheus text (`GET /metrics`). Every call has a timeout; failures become
 * one-line errors naming the URL.
 */
import { DNS_DISCOVERY_PREFIX, checkDiscoveryUrl, isDiscoveryUrl, resolveAll } from '../../proxy/bifrost-nodes.ts';
import { DEV_ADMIN_TOKEN } from '../../proxy/shim-defaults.ts';
import { CliError, EXIT_USAGE } from '../output.ts';

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

/** How the name of a `dns+http://name:port` admin URL is looked up. */
export type ResolveHost = (host: string) => Promise<string[]>;

/** A lookup's time limit. */
const DNS_TIMEOUT_MS = 3000;

/** Every A/AAAA record of the name, asked of the DNS servers as the shim discovers gateway pods. */
const defaultResolveHost: ResolveHost = (host) => resolveAll(host, DNS_TIMEOUT_MS);

/** An admin URL as used: `http://address:port`, or why a `dns+` name gave none. */
export interface ExpandedAdminUrl {
  url: string;
  error?: string;
}

/**
 * Admin URLs with every `dns+http://name:port` replaced by one
 * `http://address:port` per address of the name (a Kubernetes headless
 * Service over the shim pods); duplicates dropped. A name that cannot be
 * looked up, or has no address, stays as one entry with `error`.
 */
export async function expandAdminUrls(urls: readonly string[], resolveHost: ResolveHost = defaultResolveHost): Promise<ExpandedAdminUrl[]> {
  const groups = await Promise.all(
    urls.map(async (u): Promise<ExpandedAdminUrl[]> => {
      if (!isDiscoveryUrl(u)) return [{ url: u }];
      const inner = new URL(u.slice(DNS_DISCOVERY_PREFIX.length));
      const host = inner.hostname.replace(/^\[|\]$/g, '');
      try {
        const addresses = [...(await resolveHost(host))].sort();
        if (!addresses.length) return [{ url: u, error: `no shim replica behind ${u}: the name ${host} has no address` }];
        return addresses.map((a) => ({ url: `${inner.protocol}//${a.includes(':') ? `[${a}]` : a}:${inner.port}` }));
      } catch (err) {
        return [{ url: u, error: `could not look up the shim replicas of ${u}: ${(err as Error).message}` }];
      }
    }),
  );
  const seen = new Set<string>();
  return groups.flat().filter((e) => !seen.has(e.url) && !!seen.add(e.url));
}

/**
 * Checks an admin URL given on the command line: an http(s) URL, or
 * `dns+http://name:port` (explicit port; plain http, since the addresses it
 * finds are pod IPs no certificate names). Returns it without a trailing
 * slash; throws with the option's name otherwise.
 */
export function checkAdminUrl(option: string, value: string): string {
  if (isDiscoveryUrl(value)) return checkDiscoveryUrl(option, value, { port: "the shims' admin port, e.g. :9090", certificates: "the shims' certificates" });
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    // below
  }
  if (u?.protocol !== 'http:' && u?.protocol !== 'https:') throw new Error(`${option} must be an http(s) URL or dns+http://NAME:PORT, got "${value}"`);
  return value.replace(/\/+$/, '');
}

/**
 * The admin URLs of a command's repeated `--admin-url`: each checked
 * (`checkAdminUrl`; a bad one is a usage error, exit 2), duplicates dropped,
 * and the default admin URL when none was given.
 */
export function adminUrlsFromOptions(given: readonly string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const urls = given?.length ? given : [defaultAdminUrl(env)];
  return [
    ...new Set(
      urls.map((u) => {
        try {
          return checkAdminUrl('--admin-url', u);
        } catch (err) {
          throw new CliError((err as Error).message, EXIT_USAGE);
        }
      }),
    ),
  ];
}

/** A replica that could not be found (its `dns+` name did not resolve): every call fails with why. */
class UnresolvedReplica extends ShimAdminClient {
  constructor(
    url: string,
    private readonly why: string,
  ) {
    super(url, '');
  }
  override rollout(): Promise<ShimRolloutSnapshot> {
    return Promise.reject(new ShimAdminError(this.why));
  }
  override drain(): Promise<DrainAnswer> {
    return Promise.reject(new ShimAdminError(this.why));
  }
  override metricsText(): Promise<string> {
    return Promise.reject(new ShimAdminError(this.why));
  }
}

/**
 * Shim replicas given by admin URLs of which some are `dns+http://name:port`
 * names: the names are looked up again at every use (each scrape and each
 * apply check of a ramp), so a long ramp follows shim pods as they restart
 * with new addresses. A name that does not resolve counts as one replica that
 * cannot be reached.
 */
export class ShimFleet {
  private readonly clients = new Map<string, ShimAdminClient>();

  constructor(
    readonly urls: readonly string[],
    private readonly token: string,
    private readonly resolveHost: ResolveHost = defaultResolveHost,
  ) {}

  async replicas(): Promise<ShimAdminClient[]> {
    const expanded = await expandAdminUrls(this.urls, this.resolveHost);
    return expanded.map((e) => {
      if (e.error) return new UnresolvedReplica(e.url, e.error);
      let c = this.clients.get(e.url);
      if (!c) this.clients.set(e.url, (c = new ShimAdminClient(e.url, this.token)));
      return c;
    });
  }
}

/**
 * The shim replicas a rollout command talks to: one client, one per
 * `--admin-url` when several shim replicas sit behind a load balancer (each
 * routes, counts and drains only its own connections), or a fleet with
 * `dns+http://` names looked up at each use.
 */
export type ShimAdmins = ShimAdminClient | readonly ShimAdminClient[] | ShimFleet;

/** The replicas now. */
export async function currentReplicas(admins: ShimAdmins): Promise<readonly ShimAdminClient[]> {
  if (admins instanceof ShimFleet) return admins.replicas();
  return admins instanceof ShimAdminClient ? [admins] : admins;
}
