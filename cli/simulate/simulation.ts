/**
 * `bifrost simulate`: N real unchanged legacy clients (sails.io.js 1.2.1 on
 * socket.io-client 2) do the Godserver init through the shim, connect where
 * it sends them, read a collection (which subscribes them) and keep updating
 * collections while the rollout is ramped. Each update is expected by every
 * client subscribed to that collection that stayed connected from before the
 * update until the grace period after it (legacy clients have no recovery:
 * what happens during their own reconnect gap is counted apart, not as lost).
 * The rollout percentage it found is put back when it ends, also on an error
 * or Ctrl-C (`signal`); the command refuses to start while a ramp is running.
 */
import { randomBytes } from 'node:crypto';
import { signAccessToken } from '../../gateway/token.ts';
import { connectSailsIoClient, type LegacyClient } from './legacy-clients.ts';

export interface SimulationOptions {
  shimUrl: string;
  adminUrl: string;
  adminToken: string;
  tokenSecret: string;
  clients: number;
  /** Rollout percentages, in order. */
  ramp: number[];
  /** Time spent at each step, ms. */
  everyMs: number;
  collections: number;
  /** Updates per second across all clients. */
  updatesPerSec: number;
  /** How long an update may take to reach its subscribers, ms. */
  graceMs: number;
  onTick?: (s: SimulationStats) => void;
  /** Aborted (Ctrl-C): the ramp stops early; the starting percentage is restored all the same. */
  signal?: AbortSignal;
}

export interface SimulationStats {
  step: number;
  steps: number;
  percent: number;
  stepEndsInMs: number;
  clients: number;
  connected: number;
  onBackend: { sync: number; bifrost: number };
  reconnects: number;
  updates: number;
  failedRequests: number;
  /** Why requests failed (the first few): method, path, client and the status or error. */
  failures: string[];
  delivered: number;
  expected: number;
  missed: number;
  /** Deliveries not expected because the client was reconnecting: the legacy protocol cannot replay them. */
  duringReconnect: number;
  /** The rollout percentage before the simulation, put back when it ends (also on Ctrl-C or an error). */
  startPercent: number | null;
  /** Whether the starting percentage was put back (false while running, or when restoring failed). */
  restored: boolean;
  /** Stopped early (Ctrl-C). */
  interrupted: boolean;
}

interface SimClient {
  i: number;
  client: LegacyClient;
  collection: string;
  /** Subscribed periods: from the read after a connect until the next disconnect. */
  periods: { from: number; to?: number }[];
  markers: Set<string>;
  reconnects: number;
  /** Disconnects so far: a request that spans one was lost to the move, not failed. */
  disconnects: number;
}

interface Update {
  collection: string;
  marker: string;
  writer: number;
  sentAt: number;
  ackAt: number;
}

export class SimulationError extends Error {}

async function adminJson(o: SimulationOptions, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(o.adminUrl + path, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), authorization: `Bearer ${o.adminToken}` },
    body: body ? JSON.stringify(body) : undefined,
  }).catch((err: Error) => {
    throw new SimulationError(`shim admin API at ${o.adminUrl} is unreachable (${err.message}); is the stack up (bifrost up)?`);
  });
  const text = await res.text();
  if (!res.ok) throw new SimulationError(`${method} ${path} on the shim admin API answered ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

export async function runSimulation(o: SimulationOptions): Promise<SimulationStats> {
  const run = randomBytes(3).toString('hex');
  const sims: SimClient[] = [];
  const updates: Update[] = [];
  let failedRequests = 0;
  let stopUpdates = false;
  const stats: SimulationStats = {
    step: 0,
    steps: o.ramp.length,
    percent: o.ramp[0] ?? 0,
    stepEndsInMs: 0,
    clients: o.clients,
    connected: 0,
    onBackend: { sync: 0, bifrost: 0 },
    reconnects: 0,
    updates: 0,
    failedRequests: 0,
    failures: [],
    delivered: 0,
    expected: 0,
    missed: 0,
    duringReconnect: 0,
    startPercent: null,
    restored: false,
    interrupted: false,
  };

  // The real rollout: remembered now, put back in `finally` whatever happens.
  const before = (await adminJson(o, 'GET', '/api/rollout')) as { percent?: unknown };
  if (typeof before.percent !== 'number') throw new SimulationError(`GET /api/rollout on the shim admin API has no percent (is the shim in flags-file mode?): ${JSON.stringify(before).slice(0, 200)}`);
  const startPercent = before.percent;
  stats.startPercent = startPercent;
  let changed = false;
  let collectionsReady = false;
  const aborted = () => o.signal?.aborted === true;
  const sleep = (ms: number) =>
    new Promise<void>((res) => {
      if (aborted()) return res();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        o.signal?.removeEventListener('abort', done);
        res();
      }
      o.signal?.addEventListener('abort', done, { once: true });
    });
  const collectionIds = Array.from({ length: o.collections }, (_, k) => `sim-${run}-c${k}`);

  /** A request failed on a connection that stayed up all along (not one cut by a move mid-request). */
  const failedWhileUp = (s: SimClient, disconnectsBefore: number) => s.client.isConnected() && s.disconnects === disconnectsBefore;
  /** One virtual request; a failure on a connection that stayed up is counted, with why. */
  const request = async (s: SimClient, method: string, path: string, data?: unknown) => {
    const before = s.disconnects;
    const r = await s.client.request(method, path, data).catch((err: Error) => err);
    if (!(r instanceof Error) && r.statusCode === 200) return r;
    if (failedWhileUp(s, before)) {
      failedRequests++;
      const why = r instanceof Error ? r.message : `${r.statusCode} ${JSON.stringify(r.body ?? null).slice(0, 160)}`;
      if (stats.failures.length < 10) stats.failures.push(`${method.toUpperCase()} ${path} by client ${s.i} (step ${stats.step}, connect #${s.client.connectCount()}): ${why}`);
    }
    return undefined;
  };
  const subscribe = async (s: SimClient) => {
    const r = await request(s, 'get', `/collection/${s.collection}`);
    if (r && s.client.isConnected()) s.periods.push({ from: Date.now() });
  };
  /** Subscribed from before the update until its grace period ended, without a break. */
  const steadyFor = (s: SimClient, u: Update) => s.periods.some((p) => p.from < u.sentAt && (p.to === undefined || p.to > u.ackAt + o.graceMs));

  try {
    changed = true;
    await adminJson(o, 'PUT', '/api/rollout', { percent: o.ramp[0] ?? 0 });
    // Clients: Godserver init through the shim, then connect where it says.
    for (let i = 0; i < o.clients; i += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, o.clients - i) }, async (_, k) => {
          const idx = i + k;
          const token = await signAccessToken(o.tokenSecret, { userId: `sim-${run}-u${idx}`, teamId: `sim-${run}-t${idx % 10}` });
          const init = await fetch(`${o.shimUrl}/godserver/init`, { headers: { 'x-access-token': token } }).catch((err: Error) => {
            throw new SimulationError(`the shim at ${o.shimUrl} is unreachable (${err.message})`);
          });
          if (init.status !== 200) throw new SimulationError(`Godserver init through the shim answered ${init.status}: ${(await init.text()).slice(0, 200)}`);
          const { syncserver_url: url } = (await init.json()) as { syncserver_url: string };
          const client = await connectSailsIoClient({ url, token, recordEvents: [] });
          const s: SimClient = { i: idx, client, collection: collectionIds[idx % o.collections]!, periods: [], markers: new Set(), reconnects: 0, disconnects: 0 };
          client.on('collection', (e) => {
            const ev = e as { verb?: string; data?: { name?: string } };
            if (ev.verb === 'updated' && typeof ev.data?.name === 'string') s.markers.add(ev.data.name);
          });
          client.on('disconnect', () => {
            s.disconnects++;
            const open = s.periods.at(-1);
            if (open && open.to === undefined) open.to = Date.now();
          });
          client.on('connect', () => {
            // Like a real app, re-read what it shows after a reconnect (this re-subscribes it);
            // before the collections exist there is nothing to read yet (the first read follows).
            s.reconnects++;
            if (collectionsReady) void subscribe(s);
          });
          sims[idx] = s;
        }),
      );
    }
    for (const id of collectionIds) {
      const r = await sims[0]!.client.request('post', '/collection', { id, workspace: `sim-${run}`, name: 'start', data: {} });
      if (r.statusCode !== 200) throw new SimulationError(`creating collection ${id} failed with ${r.statusCode}`);
    }
    collectionsReady = true;
    await Promise.all(sims.map(subscribe));

    let seq = 0;
    const updater = (async () => {
      while (!stopUpdates) {
        const writer = sims[Math.floor(Math.random() * sims.length)]!;
        const collection = collectionIds[Math.floor(Math.random() * collectionIds.length)]!;
        const marker = `m-${run}-${seq++}`;
        const sentAt = Date.now();
        const r = await request(writer, 'patch', `/collection/${collection}`, { name: marker });
        if (r) updates.push({ collection, marker, writer: writer.i, sentAt, ackAt: Date.now() });
        await new Promise((res) => setTimeout(res, 1000 / o.updatesPerSec));
      }
    })();

    /** Tallies the updates whose grace period is over. */
    const evaluate = (upTo: number) => {
      let expected = 0;
      let steadyDelivered = 0;
      let otherDelivered = 0;
      let duringReconnect = 0;
      for (const u of updates) {
        if (u.ackAt + o.graceMs > upTo) continue;
        for (const s of sims) {
          // Sails does not echo a change to the socket that made it.
          if (s.collection !== u.collection || s.i === u.writer) continue;
          const got = s.markers.has(u.marker);
          if (steadyFor(s, u)) {
            expected++;
            if (got) steadyDelivered++;
          } else if (got) otherDelivered++;
          else duringReconnect++;
        }
      }
      return { expected, delivered: steadyDelivered + otherDelivered, missed: expected - steadyDelivered, duringReconnect };
    };

    const refresh = async (stepEndsAt: number) => {
      const snap = await adminJson(o, 'GET', '/api/rollout').catch(() => undefined);
      if (snap) stats.onBackend = { sync: snap.connections?.sync ?? 0, bifrost: snap.connections?.bifrost ?? 0 };
      const e = evaluate(Date.now());
      Object.assign(stats, {
        stepEndsInMs: Math.max(0, stepEndsAt - Date.now()),
        connected: sims.filter((s) => s.client.isConnected()).length,
        reconnects: sims.reduce((n, s) => n + s.reconnects, 0),
        updates: updates.length,
        failedRequests,
        ...e,
      });
      o.onTick?.({ ...stats, onBackend: { ...stats.onBackend }, failures: [...stats.failures] });
    };

    for (const [i, percent] of o.ramp.entries()) {
      if (aborted()) break;
      stats.step = i + 1;
      stats.percent = percent;
      if (i > 0) await adminJson(o, 'PUT', '/api/rollout', { percent });
      const stepEndsAt = Date.now() + o.everyMs;
      while (Date.now() < stepEndsAt && !aborted()) {
        await refresh(stepEndsAt);
        await sleep(Math.min(1000, Math.max(0, stepEndsAt - Date.now())));
      }
    }
    stopUpdates = true;
    await updater;
    await sleep(o.graceMs + 500);
    await refresh(Date.now());
  } finally {
    stopUpdates = true;
    stats.interrupted = aborted();
    await Promise.all(sims.filter(Boolean).map((s) => s.client.close()));
    if (changed) {
      // Put the real rollout back as it was: a simulation is not a rollout decision.
      await adminJson(o, 'PUT', '/api/rollout', { percent: startPercent }).then(
        () => (stats.restored = true),
        (err: Error) => process.stderr.write(`warning: could not restore the rollout to ${startPercent}% (${err.message}): run \`bifrost rollout set ${startPercent}\`\n`),
      );
    }
  }
  return { ...stats, failures: [...stats.failures] };
}
