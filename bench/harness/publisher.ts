/**
 * The fixed-rate publisher process. Publish i of a run is *intended* at
 * `t0 + i / rate`; its payload carries that intended time, so a publisher or
 * server that falls behind shows up as latency instead of silently slowing the
 * schedule (no coordinated omission). Topics are used round-robin.
 *
 * Modes, one per system (each publishes the way that system's users would):
 * - `bifrost-broker`  `RedisBroker.publish` — the call the private API makes (stream append + pub/sub, one Lua script)
 * - `bifrost-http`    `POST /v1/publish` on the private API of the nodes, in turn
 * - `socketio-emitter` `@socket.io/redis-emitter` `to(room).emit('event', data)`
 * - `redis-publish`   ioredis `PUBLISH <prefix><topic> <payload>` (the bare ws reference)
 */
import http from 'node:http';
import { Redis } from 'ioredis';
import { Emitter } from '@socket.io/redis-emitter';
import { RedisBroker } from '../../gateway/broker-redis.ts';
import { nowMs, padFor, payload } from './frames.ts';
import { serveRpc } from './worker-rpc.ts';

export type PublishMode = 'bifrost-broker' | 'bifrost-http' | 'socketio-emitter' | 'redis-publish';

export interface PublisherSetup {
  mode: PublishMode;
  redisUrl: string;
  /** bifrost-broker: key prefix of the gateways. */
  redisPrefix?: string;
  /** bifrost-http: private API base URLs and the service token. */
  privateUrls?: string[];
  serviceToken?: string;
  /** redis-publish: channel prefix. */
  channelPrefix?: string;
  payloadBytes: number;
  /** Publishes allowed in flight before the publisher counts itself behind. */
  maxInFlight?: number;
}

export interface PublishRun {
  topics: string[];
  /** Publishes per second. */
  rate: number;
  durationMs: number;
}

export interface PublishResult {
  sent: number;
  failed: number;
  /** Intended publishes that were never made because too many were in flight (counted as lost). */
  skipped: number;
  durationMs: number;
  /** How far behind schedule the publisher fell at worst, ms. */
  maxLagMs: number;
}

let setupOpts: PublisherSetup | undefined;
let publishOne: ((topic: string, json: string, obj: () => unknown) => Promise<unknown>) | undefined;
let closeFn: () => Promise<void> = async () => {};
let pad = '';

async function setup(o: PublisherSetup): Promise<void> {
  setupOpts = o;
  pad = padFor(o.payloadBytes);
  switch (o.mode) {
    case 'bifrost-broker': {
      const broker = new RedisBroker({ url: o.redisUrl, prefix: o.redisPrefix });
      await broker.ready();
      publishOne = (topic, dataJson) => broker.publish({ topic, event: 'bench', dataJson });
      closeFn = () => broker.close();
      return;
    }
    case 'bifrost-http': {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
      const urls = (o.privateUrls ?? []).map((u) => new URL('/v1/publish', u));
      let n = 0;
      publishOne = (topic, dataJson) =>
        new Promise((resolve, reject) => {
          const u = urls[n++ % urls.length]!;
          const body = `{"topic":${JSON.stringify(topic)},"event":"bench","data":${dataJson}}`;
          const req = http.request(
            { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${o.serviceToken}` } },
            (res) => {
              res.resume();
              res.on('end', () => (res.statusCode === 200 ? resolve(undefined) : reject(new Error(`HTTP ${res.statusCode}`))));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      closeFn = async () => agent.destroy();
      return;
    }
    case 'socketio-emitter': {
      const redis = new Redis(o.redisUrl);
      const emitter = new Emitter(redis);
      publishOne = async (topic, _json, obj) => {
        emitter.to(topic).emit('event', obj());
      };
      closeFn = async () => void redis.disconnect();
      return;
    }
    case 'redis-publish': {
      const redis = new Redis(o.redisUrl);
      const prefix = o.channelPrefix ?? '';
      publishOne = (topic, json) => redis.publish(prefix + topic, json);
      closeFn = async () => void redis.disconnect();
      return;
    }
  }
}

async function run(r: PublishRun): Promise<PublishResult> {
  if (!publishOne || !setupOpts) throw new Error('publisher not set up');
  const publish = publishOne;
  const maxInFlight = setupOpts.maxInFlight ?? 5000;
  const interval = 1000 / r.rate;
  const total = Math.round((r.durationMs / 1000) * r.rate);
  let sent = 0;
  let failed = 0;
  let skipped = 0;
  let inFlight = 0;
  let maxLagMs = 0;
  let i = 0;
  const t0 = nowMs() + 5;
  let allSettled!: () => void;
  const settled = new Promise<void>((res) => (allSettled = res));
  const done = (): void => {
    inFlight--;
    if (i >= total && inFlight === 0) allSettled();
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = nowMs();
      while (i < total) {
        const intended = t0 + i * interval;
        if (intended > now) break;
        maxLagMs = Math.max(maxLagMs, now - intended);
        const topic = r.topics[i % r.topics.length]!;
        const seq = i;
        i++;
        if (inFlight >= maxInFlight) {
          skipped++;
          continue;
        }
        const json = payload(intended, seq, pad);
        inFlight++;
        publish(topic, json, () => ({ ts: Number(intended.toFixed(3)), seq, pad })).then(
          () => {
            sent++;
            done();
          },
          () => {
            failed++;
            done();
          },
        );
      }
      if (i >= total) return resolve();
      setTimeout(tick, Math.min(1, Math.max(0, t0 + i * interval - nowMs())));
    };
    tick();
  });
  if (inFlight > 0) await Promise.race([settled, new Promise((res) => setTimeout(res, 10_000))]);
  return { sent, failed, skipped, durationMs: Math.round(nowMs() - t0), maxLagMs: Math.round(maxLagMs) };
}

serveRpc({
  setup,
  run,
  async close() {
    await closeFn();
  },
});
