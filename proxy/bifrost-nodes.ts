/**
 * The Bifrost nodes the shim can send a socket to, and how it picks one.
 *
 * Each node's `GET /load` (JSON `{"loadFactor": number, "draining": boolean,
 * ...}`) is polled every `pollIntervalMs`. A node is *eligible* when its last
 * poll answered, it is not draining, its load factor is at most
 * `maxLoadFactor` (1 = full), and it has not just refused a connection.
 * A node that answers HTTP but not with a load document (an older gateway)
 * is eligible with an unknown load.
 *
 * Choice: "power of two random choices" — pick two eligible nodes at random and
 * take the less loaded one. It avoids the herd effect of "always the least
 * loaded" between polls (every new socket would pile onto the same node for a
 * whole second) while still steering away from hot nodes. With two nodes both
 * are always drawn, so the load compared also counts the sockets this shim
 * sent to each node since its last poll (LOAD_PER_NEW_SOCKET, LOAD_TIE). The
 * remaining eligible nodes follow, least loaded first, as retry candidates.
 *
 * Long-polling sessions are placed differently (`byUser`): by rendezvous
 * (highest random weight) hashing of the user. A polling session lives on the
 * node that answered its handshake, and its later requests may reach a shim
 * replica that never saw that handshake (another replica behind a non-sticky
 * load balancer, or this one restarted). Every replica with the same nodes
 * computes the same order for the same user, with no shared state, so such a
 * request still finds its session (see docs/shim.md, "Polling sessions across
 * replicas"). The two uses filter differently on purpose:
 * - placing a new session (a handshake) skips nodes that are unreachable,
 *   draining or over `maxLoadFactor` (a new session must not go there);
 * - finding an existing session ranks over every known node except those
 *   known to be unreachable. A session stays on the node that created it
 *   whatever that node's load, and load, draining and the short penalty after
 *   a refused connection are this replica's own, transient view: filtering on
 *   them would make replicas that disagree send one session to different
 *   nodes ("Session ID unknown").
 * The 2 s penalty after a refused connection is not applied to either (the
 * handshake's retry moves past a refusing node anyway).
 *
 * ## Node discovery
 * A configured URL is one node: `http://10.0.0.5:8080`. A URL with a `dns+`
 * scheme is a *set* of nodes:
 * `dns+http://bifrost-gateway-nodes.default.svc.cluster.local.:8080` names a
 * Kubernetes headless Service (or any DNS name with one A/AAAA record per
 * gateway); it is resolved before every `/load` round and each address becomes
 * a node (`http://<address>:8080`), so the shim polls and picks each gateway
 * pod itself and follows scale-ups, scale-downs and replaced pods. A plain URL
 * naming an ordinary (load-balanced) Service would be one "node" whose `/load`
 * answer comes from a random pod each time. Discovered addresses are pod
 * addresses: only for proxied mode (direct mode hands node URLs to clients),
 * and plain `http` only (a pod's certificate rarely names its IP address; TLS
 * ends at the ingress).
 *
 * Lookups go to the DNS servers directly (c-ares `resolve4` + `resolve6`, not
 * `dns.lookup` on libuv's small thread pool, which Sync/Godserver connects and
 * file reads share): no /etc/hosts. A name without a trailing dot is also tried
 * with resolv.conf's search domains, one after the other; the fully qualified
 * name (with the trailing dot) is one query. Each round is bounded by the poll
 * timeout; a round is skipped while the previous one still runs (so an
 * older answer can never land after a newer one); a failed or timed-out lookup keeps
 * the last known addresses. `start` does not wait longer than one bounded round:
 * the shim listens with no discovered node rather than hang on a dead resolver.
 */
import { createHash } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { withTimeout } from '../gateway/with-timeout.ts';
import type { Logger } from 'pino';

export interface BifrostNode {
  /** Public base URL as configured (what clients use in direct mode). */
  readonly url: string;
  readonly target: URL;
  /** The node's own id from /load (`node`, `nodeId` or `id`), else its host:port. */
  id: string;
  loadFactor: number | undefined;
  draining: boolean;
  /** Undefined until the first poll finished. */
  reachable: boolean | undefined;
  lastPolledAt: number;
  /** Not chosen before this time (ms epoch) after a refused connection. */
  failedUntil: number;
  /** Sockets this shim sent to the node since its last poll (the poll cannot know them yet). */
  assignedSincePoll: number;
  /** The node's broker kind from /load (`memory` = embedded, one process; `redis`), if it says. */
  broker?: string;
}

/**
 * Load factors closer than this count as equal; between such nodes the one
 * this shim sent fewer sockets to since the last poll wins. Without it a
 * node whose last sample was a hair lower would take every socket until the
 * next poll (a herd, seen in reconnect storms).
 */
export const LOAD_TIE = 0.05;

/**
 * What one socket sent to a node since its last poll adds to that node's
 * load factor in the comparison (the poll cannot know about it yet). During a
 * storm a node spends about a millisecond of CPU per handshake, so a thousand
 * sockets in a second are about a core: 0.001 each. Without it, loads that
 * differ by more than LOAD_TIE send a whole poll interval of a storm to the
 * less loaded node (the bench's 5,000-client storm split about 2:1).
 */
export const LOAD_PER_NEW_SOCKET = 0.001;

/** The URL scheme prefix that makes a configured URL a DNS name to discover nodes from. */
export const DNS_DISCOVERY_PREFIX = 'dns+';

/** True for a `dns+http://name:port` URL (a set of nodes, see "Node discovery"). */
export function isDiscoveryUrl(url: string): boolean {
  return url.startsWith(DNS_DISCOVERY_PREFIX);
}

/**
 * Checks a `dns+http://name:port` URL given as `name` (an option): an http URL
 * after the prefix, with an explicit port (`port` says which, for the message).
 * `dns+https` is refused: the addresses found are pod IPs, which no
 * certificate names (`certificates` says whose). Returns it without a
 * trailing slash.
 */
export function checkDiscoveryUrl(name: string, value: string, o: { port: string; certificates: string }): string {
  const inner = value.slice(DNS_DISCOVERY_PREFIX.length).replace(/\/+$/, '');
  let u: URL;
  try {
    u = new URL(inner);
  } catch {
    throw new Error(`${name} must be an http(s) URL, got ${JSON.stringify(inner)}`);
  }
  if (u.protocol === 'https:') {
    throw new Error(
      `${name} ${JSON.stringify(value)}: dns+https is not supported: discovered addresses are pod IPs, which ${o.certificates} do not name; use dns+http:// (plain HTTP inside the cluster, TLS ends at the ingress)`,
    );
  }
  if (u.protocol !== 'http:') throw new Error(`${name} must be an http(s) URL, got ${JSON.stringify(inner)}`);
  if (!u.port) throw new Error(`${name} ${JSON.stringify(value)} needs an explicit port (${o.port})`);
  return DNS_DISCOVERY_PREFIX + inner;
}

/** Error codes of a family without records: the other family may still answer. */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

/** The domains of the last `search` (or `domain`) line of a resolv.conf text, as the system resolver uses them. */
export function parseSearchDomains(resolvConf: string): string[] {
  let domains: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const [key, ...values] = line.replace(/[#;].*$/, '').trim().split(/\s+/);
    if (key === 'search' || key === 'domain') domains = values.filter((v) => v.length > 0).map((v) => v.replace(/\.+$/, ''));
  }
  return domains;
}

/**
 * The names to ask for a host, in order: a fully qualified name (trailing dot)
 * only as it is; otherwise the name as it is, then with each search domain
 * appended (so `gw-nodes.default.svc` still finds `gw-nodes.default.svc.cluster.local`).
 */
export function namesToTry(host: string, searchDomains: string[]): string[] {
  if (host.endsWith('.')) return [host];
  return [host, ...searchDomains.map((d) => `${host}.${d}`)];
}

let searchDomainsOfHost: string[] | undefined;
/** This host's search domains (/etc/resolv.conf, read once: a few hundred bytes, not per lookup). */
function systemSearchDomains(): string[] {
  if (!searchDomainsOfHost) {
    try {
      searchDomainsOfHost = parseSearchDomains(readFileSync('/etc/resolv.conf', 'utf8'));
    } catch {
      searchDomainsOfHost = [];
    }
  }
  return searchDomainsOfHost;
}

/**
 * Every address of a host name (A and AAAA), asked of the DNS servers directly
 * (c-ares, off libuv's thread pool), within `timeoutMs` overall. A name not
 * ending in a dot is also tried with resolv.conf's search domains (see
 * `namesToTry`); the first name with records answers. A family without records
 * is no error when the other has some; any other failure of either family
 * rejects (a partial answer would drop that family's pods). `signal` cancels
 * the queries.
 */
export async function resolveAll(host: string, timeoutMs: number, signal?: AbortSignal, searchDomains: string[] = systemSearchDomains()): Promise<string[]> {
  if (net.isIP(host)) return [host];
  const resolver = new Resolver({ timeout: Math.max(1, Math.floor(timeoutMs / 2)), tries: 2 });
  const cancel = (): void => resolver.cancel();
  const timer = setTimeout(cancel, timeoutMs);
  timer.unref();
  signal?.addEventListener('abort', cancel, { once: true });
  try {
    let notFound: Error | undefined;
    for (const name of namesToTry(host, searchDomains)) {
      const answers = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
      const found = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []));
      const errors = answers.flatMap((a) => (a.status === 'rejected' ? [a.reason as NodeJS.ErrnoException] : []));
      const hard = errors.find((e) => !NO_RECORDS.has(e.code ?? ''));
      if (hard) throw hard.code === 'ECANCELLED' && !signal?.aborted ? new Error(`DNS lookup of ${host} timed out after ${timeoutMs} ms`) : hard;
      if (found.length > 0 || errors.length === 0) return found;
      notFound ??= errors[0]!;
    }
    throw notFound ?? new Error(`DNS lookup of ${host}: no address`);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', cancel);
  }
}

export interface NodePoolOptions {
  /** Node URLs, and `dns+http://name:port` names to discover nodes from. */
  urls: string[];
  /**
   * How `dns+` names are resolved to addresses (default: `resolveAll`, every A/AAAA
   * record from the DNS servers). Whatever it is, a lookup is bounded by `pollTimeoutMs`.
   */
  resolveHost?: (host: string) => Promise<string[]>;
  log: Logger;
  /** Default 1000 ms. */
  pollIntervalMs?: number;
  /** Timeout of one /load request, and of one round of DNS lookups; default 800 ms. */
  pollTimeoutMs?: number;
  /** Nodes above this load factor are skipped (default 1). */
  maxLoadFactor?: number;
  /** How long a node that refused a connection is skipped (default 2000 ms). */
  failurePenaltyMs?: number;
  random?: () => number;
}

/** Whether a node may receive a new socket now. */
export function isEligible(node: BifrostNode, maxLoadFactor: number, now: number): boolean {
  if (node.reachable === false || node.draining) return false;
  if (node.loadFactor !== undefined && node.loadFactor > maxLoadFactor) return false;
  return now >= node.failedUntil;
}

/** The rendezvous weight of a node for a key: the first 48 bits of SHA-256(key, node URL). */
function rendezvousWeight(key: string, url: string): number {
  return createHash('sha256').update(key).update('\0').update(url).digest().readUIntBE(0, 6);
}

/**
 * Orders nodes by rendezvous (highest random weight) hashing of `key`: every
 * caller with the same nodes gets the same order, and removing a node only
 * moves the keys that were on it. Node identity is its configured URL (known
 * before any poll, the same on every shim replica).
 */
export function orderByRendezvous<T extends Pick<BifrostNode, 'url'>>(nodes: T[], key: string): T[] {
  return nodes
    .map((n) => ({ n, w: rendezvousWeight(key, n.url) }))
    .sort((a, b) => b.w - a.w || (a.n.url < b.n.url ? -1 : a.n.url > b.n.url ? 1 : 0))
    .map((x) => x.n);
}

/**
 * Orders candidate nodes: the winner of two random choices first (lower load
 * factor, counting the sockets sent since the last poll; unknown load counts
 * as 0.5), then the others by load, ascending.
 */
export function orderByTwoRandomChoices<T extends Pick<BifrostNode, 'loadFactor'> & Partial<Pick<BifrostNode, 'assignedSincePoll'>>>(
  nodes: T[],
  random: () => number = Math.random,
): T[] {
  if (nodes.length <= 1) return [...nodes];
  /** The polled load plus what this shim sent since the poll. */
  const load = (n: T): number => (n.loadFactor ?? 0.5) + (n.assignedSincePoll ?? 0) * LOAD_PER_NEW_SOCKET;
  /** Negative when x is the better choice. */
  const compare = (x: T, y: T): number => {
    const d = load(x) - load(y);
    if (Math.abs(d) > LOAD_TIE) return d;
    return (x.assignedSincePoll ?? 0) - (y.assignedSincePoll ?? 0) || d;
  };
  const i = Math.floor(random() * nodes.length);
  let j = Math.floor(random() * (nodes.length - 1));
  if (j >= i) j += 1;
  const a = nodes[i]!;
  const b = nodes[j]!;
  const first = compare(b, a) < 0 ? b : a;
  const rest = nodes.filter((n) => n !== first).sort(compare);
  return [first, ...rest];
}

/** Whether a node may hold a user's polling session (see "Long-polling sessions" above). */
function canHoldSession(node: BifrostNode, placing: boolean, maxLoadFactor: number): boolean {
  if (node.reachable === false) return false;
  if (!placing) return true;
  if (node.draining) return false;
  return node.loadFactor === undefined || node.loadFactor <= maxLoadFactor;
}

function newNode(url: string): BifrostNode {
  const target = new URL(url);
  return { url: url.replace(/\/+$/, ''), target, id: target.host, loadFactor: undefined, draining: false, reachable: undefined, lastPolledAt: 0, failedUntil: 0, assignedSincePoll: 0 };
}

/** The node URL of one discovered address: the `dns+` URL with the address as its host. */
function nodeUrlFor(base: URL, address: string): string {
  const u = new URL(base.href);
  u.hostname = net.isIPv6(address) ? `[${address}]` : address;
  return u.href.replace(/\/+$/, '');
}

export class BifrostNodePool {
  readonly nodes: BifrostNode[];
  private timer: NodeJS.Timeout | undefined;
  private readonly maxLoadFactor: number;
  private readonly random: () => number;
  private closed = false;
  /** The round of discovery and /load polls running now, if any (a timer tick skips while it runs). */
  private round: Promise<void> | undefined;
  /** Cancels the DNS queries in flight (on close). */
  private readonly lookups = new AbortController();
  /** The configured (static) node URLs: never removed by discovery. */
  private readonly staticUrls = new Set<string>();
  private readonly warnedNoLoad = new Set<string>();
  /** The nodes last reported as unable to share topics (see checkBrokers), so the error is logged once per change. */
  private isolatedKey = '';

  /** `dns+` names, each with the node URLs it resolved to last. */
  private readonly discovered = new Map<string, { base: URL; urls: Set<string>; failing: boolean }>();

  constructor(private readonly opts: NodePoolOptions) {
    this.maxLoadFactor = opts.maxLoadFactor ?? 1;
    this.random = opts.random ?? Math.random;
    this.nodes = [];
    for (const url of opts.urls) {
      if (isDiscoveryUrl(url)) {
        this.discovered.set(url, { base: new URL(url.slice(DNS_DISCOVERY_PREFIX.length)), urls: new Set(), failing: false });
      } else {
        const node = newNode(url);
        if (!this.staticUrls.has(node.url)) this.nodes.push(node);
        this.staticUrls.add(node.url);
      }
    }
  }

  private get pollTimeoutMs(): number {
    return this.opts.pollTimeoutMs ?? 800;
  }

  /**
   * Polls every node once, then keeps polling in the background. The first round
   * is bounded: DNS by the poll timeout, each /load by the poll timeout. When a
   * `dns+` name gave no node yet, it says so and returns anyway (the shim
   * listens, sockets meanwhile take the fallback); discovery goes on.
   */
  async start(): Promise<void> {
    await this.pollAll();
    if (this.closed || (this.nodes.length === 0 && this.discovered.size === 0)) return;
    const empty = [...this.discovered].filter(([, d]) => d.urls.size === 0).map(([name]) => name);
    if (empty.length > 0) {
      this.opts.log.warn(
        { names: empty, nodes: this.nodes.length },
        'Bifrost node discovery: no node found yet; starting anyway (sockets for Bifrost take the fallback until a lookup answers), discovery goes on in the background',
      );
    }
    this.timer = setInterval(() => void this.pollAll(), this.opts.pollIntervalMs ?? 1000);
    this.timer.unref();
  }

  /** Candidates for a new socket, best first; empty when no node is eligible. */
  candidates(now: number = Date.now()): BifrostNode[] {
    const eligible = this.nodes.filter((n) => isEligible(n, this.maxLoadFactor, now));
    const ordered = orderByTwoRandomChoices(eligible, this.random);
    if (ordered[0]) ordered[0].assignedSincePoll += 1;
    return ordered;
  }

  /**
   * Nodes for a user's long-polling session, in the rendezvous order of the user
   * (the same on every shim replica). `placing` (a handshake, a new session)
   * skips unreachable, draining and over-capacity nodes and counts the socket
   * against the first node's load; a lookup (a request of an existing session
   * this replica does not know) ranks every node not known to be unreachable,
   * whatever its load: the session is where it was created (see the file
   * comment). Empty when no node qualifies.
   */
  byUser(userId: string, placing: boolean): BifrostNode[] {
    const ordered = orderByRendezvous(
      this.nodes.filter((n) => canHoldSession(n, placing, this.maxLoadFactor)),
      userId,
    );
    if (placing && ordered[0]) ordered[0].assignedSincePoll += 1;
    return ordered;
  }

  /** Marks a node as having refused a connection: skipped by `candidates` for the failure penalty (not by `byUser`). */
  markFailed(node: BifrostNode, now: number = Date.now()): void {
    node.failedUntil = now + (this.opts.failurePenaltyMs ?? 2000);
  }

  byId(id: string): BifrostNode | undefined {
    return this.nodes.find((n) => n.id === id || n.url === id);
  }

  /** One round (DNS, then every /load); a call while a round runs returns that round instead of starting another. */
  private pollAll(): Promise<void> {
    if (this.round) return this.round;
    this.round = this.runRound()
      .catch((err: unknown) => this.opts.log.error({ err }, 'Bifrost node poll round failed'))
      .finally(() => {
        this.round = undefined;
      });
    return this.round;
  }

  private async runRound(): Promise<void> {
    if (this.closed) return;
    await this.discover();
    if (this.closed) return;
    await Promise.all(this.nodes.map((n) => this.poll(n)));
    if (this.closed) return;
    this.checkBrokers();
  }

  /** Resolves every `dns+` name: new addresses become nodes, vanished ones are dropped. A failed lookup keeps the last set. */
  private async discover(): Promise<void> {
    const timeoutMs = this.pollTimeoutMs;
    const signal = this.lookups.signal;
    const resolve = this.opts.resolveHost ?? ((host: string) => resolveAll(host, timeoutMs, signal));
    await Promise.all(
      [...this.discovered].map(async ([name, d]) => {
        const host = d.base.hostname.replace(/^\[(.*)\]$/, '$1');
        let addresses: string[];
        try {
          addresses = await withTimeout(resolve(host), timeoutMs, `DNS lookup of ${host} timed out after ${timeoutMs} ms`);
        } catch (err) {
          if (this.closed) return;
          if (!d.failing) this.opts.log.warn({ name, err: (err as Error).message, kept: d.urls.size }, 'Bifrost node discovery: lookup failed; keeping the last known nodes');
          d.failing = true;
          return;
        }
        // One round runs at a time and a lookup past its time limit is dropped, so no older answer can land after a newer one.
        if (this.closed) return;
        if (d.failing) this.opts.log.info({ name }, 'Bifrost node discovery: lookup works again');
        d.failing = false;
        const urls = new Set(addresses.map((a) => nodeUrlFor(d.base, a)));
        if (urls.size === 0) {
          // An empty answer (every pod unready) is kept as it is: no node then, and the fallback applies.
          if (d.urls.size > 0) this.opts.log.warn({ name }, 'Bifrost node discovery: the name has no address; no node from it');
        }
        const added = [...urls].filter((u) => !d.urls.has(u));
        const removed = [...d.urls].filter((u) => !urls.has(u));
        if (added.length === 0 && removed.length === 0) return;
        d.urls = urls;
        for (const u of removed) {
          // A configured node, or an address another name still has, stays.
          if (this.staticUrls.has(u) || [...this.discovered.values()].some((o) => o.urls.has(u))) continue;
          const i = this.nodes.findIndex((n) => n.url === u);
          if (i >= 0) this.nodes.splice(i, 1);
          this.warnedNoLoad.delete(u);
        }
        for (const u of added) if (!this.nodes.some((n) => n.url === u)) this.nodes.push(newNode(u));
        this.opts.log.info({ name, added, removed, nodes: urls.size }, 'Bifrost nodes discovered');
      }),
    );
  }

  /**
   * Nodes on the embedded broker cannot share topics with any other node. When
   * this shim spreads users over several reachable nodes and one of them runs
   * the embedded broker, users on different nodes would not see each other's
   * events: say so loudly (once per change). Routing is left as it is.
   */
  isolatedNodes(reachable: BifrostNode[] = this.nodes.filter((n) => n.reachable)): BifrostNode[] {
    return reachable.length < 2 ? [] : reachable.filter((n) => n.broker === 'memory');
  }

  private checkBrokers(): void {
    const reachable = this.nodes.filter((n) => n.reachable);
    const isolated = this.isolatedNodes(reachable);
    const key = isolated.map((n) => n.url).join(',');
    if (key === this.isolatedKey) return;
    this.isolatedKey = key;
    if (isolated.length === 0) {
      this.opts.log.info('every Bifrost node can share topics again (no node runs the embedded broker next to others)');
      return;
    }
    this.opts.log.error(
      { nodes: isolated.map((n) => `${n.id} (${n.url})`) },
      `Bifrost node(s) ${isolated.map((n) => n.id).join(', ')} run the embedded in-process broker while this shim spreads users over ${reachable.length} nodes: ` +
        'users on different nodes will not see each other\'s events. Give every gateway the same REDIS_URL.',
    );
  }

  private async poll(node: BifrostNode): Promise<void> {
    const url = new URL('load', node.target.href.endsWith('/') ? node.target.href : node.target.href + '/');
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(this.pollTimeoutMs), headers: { accept: 'application/json' } });
      const text = await res.text();
      node.reachable = true;
      node.lastPolledAt = Date.now();
      node.assignedSincePoll = 0;
      let doc: { loadFactor?: unknown; draining?: unknown; nodeId?: unknown; node?: unknown; id?: unknown; broker?: unknown } | undefined;
      try {
        doc = res.ok ? JSON.parse(text) : undefined;
      } catch {
        doc = undefined;
      }
      if (doc && typeof doc.loadFactor === 'number' && Number.isFinite(doc.loadFactor)) {
        node.loadFactor = doc.loadFactor;
        node.draining = doc.draining === true;
        const id = [doc.nodeId, doc.node, doc.id].find((v): v is string => typeof v === 'string' && v.length > 0);
        if (id) node.id = id;
        node.broker = typeof doc.broker === 'string' ? doc.broker : undefined;
      } else {
        node.loadFactor = undefined;
        node.draining = false;
        if (!this.warnedNoLoad.has(node.url)) {
          this.warnedNoLoad.add(node.url);
          this.opts.log.warn({ node: node.url, status: res.status }, 'Bifrost node answers but serves no load document on /load; treating its load as unknown');
        }
      }
    } catch (err) {
      if (node.reachable !== false) this.opts.log.warn({ node: node.url, err: (err as Error).message }, 'Bifrost node unreachable');
      node.reachable = false;
      node.lastPolledAt = Date.now();
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.lookups.abort();
  }
}
