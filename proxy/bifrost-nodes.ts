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
 * (highest random weight) hashing of the user over the eligible nodes. A
 * polling session lives on the node that answered its handshake, and its later
 * requests may reach a shim replica that never saw that handshake (another
 * replica behind a non-sticky load balancer, or this one restarted). Every
 * replica with the same `--bifrost` list and the same view of eligibility
 * computes the same node for the same user, with no shared state, so such a
 * request still finds its session (see docs/shim.md, "Polling sessions across
 * replicas").
 *
 * ## Node discovery
 * A configured URL is one node: `http://10.0.0.5:8080`. A URL with a `dns+`
 * scheme is a *set* of nodes: `dns+http://bifrost-gateway-nodes.default.svc:8080`
 * names a Kubernetes headless Service (or any DNS name with one A/AAAA record
 * per gateway); it is resolved before every `/load` round and each address
 * becomes a node (`http://<address>:8080`), so the shim polls and picks each
 * gateway pod itself and follows scale-ups, scale-downs and replaced pods. A
 * plain URL naming an ordinary (load-balanced) Service would be one "node"
 * whose `/load` answer comes from a random pod each time. A failed lookup keeps
 * the last known addresses. Discovered addresses are pod addresses: only for
 * proxied mode (direct mode hands node URLs to clients).
 */
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
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

/** True for a `dns+http(s)://name:port` URL (a set of nodes, see "Node discovery"). */
export function isDiscoveryUrl(url: string): boolean {
  return url.startsWith(DNS_DISCOVERY_PREFIX);
}

/** Every address of a host name (A and AAAA), as the system resolver answers (`dns.lookup`, like fetch does). */
export async function lookupAll(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
}

export interface NodePoolOptions {
  /** Node URLs, and `dns+http(s)://name:port` names to discover nodes from. */
  urls: string[];
  /** How `dns+` names are resolved to addresses (default: the system resolver, every address). */
  resolveHost?: (host: string) => Promise<string[]>;
  log: Logger;
  /** Default 1000 ms. */
  pollIntervalMs?: number;
  /** Timeout of one /load request, default 800 ms. */
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
      if (isDiscoveryUrl(url)) this.discovered.set(url, { base: new URL(url.slice(DNS_DISCOVERY_PREFIX.length)), urls: new Set(), failing: false });
      else this.nodes.push(newNode(url));
    }
  }

  /** Polls every node once (bounded by the poll timeout), then keeps polling in the background. */
  async start(): Promise<void> {
    await this.pollAll();
    if (this.closed || (this.nodes.length === 0 && this.discovered.size === 0)) return;
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
   * Eligible nodes for a user's long-polling session, in the rendezvous order
   * of the user (the same on every shim replica); empty when none is eligible.
   * `placing` (a handshake) counts the socket against the first node's load.
   */
  byUser(userId: string, placing: boolean, now: number = Date.now()): BifrostNode[] {
    const ordered = orderByRendezvous(
      this.nodes.filter((n) => isEligible(n, this.maxLoadFactor, now)),
      userId,
    );
    if (placing && ordered[0]) ordered[0].assignedSincePoll += 1;
    return ordered;
  }

  /** Marks a node as having refused a connection: skipped for the failure penalty. */
  markFailed(node: BifrostNode, now: number = Date.now()): void {
    node.failedUntil = now + (this.opts.failurePenaltyMs ?? 2000);
  }

  byId(id: string): BifrostNode | undefined {
    return this.nodes.find((n) => n.id === id || n.url === id);
  }

  private async pollAll(): Promise<void> {
    await this.discover();
    await Promise.all(this.nodes.map((n) => this.poll(n)));
    this.checkBrokers();
  }

  /** Resolves every `dns+` name: new addresses become nodes, vanished ones are dropped. A failed lookup keeps the last set. */
  private async discover(): Promise<void> {
    const resolve = this.opts.resolveHost ?? lookupAll;
    await Promise.all(
      [...this.discovered].map(async ([name, d]) => {
        let addresses: string[];
        try {
          addresses = await resolve(d.base.hostname.replace(/^\[(.*)\]$/, '$1'));
        } catch (err) {
          if (!d.failing) this.opts.log.warn({ name, err: (err as Error).message, kept: d.urls.size }, 'Bifrost node discovery: lookup failed; keeping the last known nodes');
          d.failing = true;
          return;
        }
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
        for (const u of removed) {
          const i = this.nodes.findIndex((n) => n.url === u);
          if (i >= 0) this.nodes.splice(i, 1);
        }
        for (const u of added) if (!this.nodes.some((n) => n.url === u)) this.nodes.push(newNode(u));
        d.urls = urls;
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
      const res = await fetch(url, { signal: AbortSignal.timeout(this.opts.pollTimeoutMs ?? 800), headers: { accept: 'application/json' } });
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
  }
}
