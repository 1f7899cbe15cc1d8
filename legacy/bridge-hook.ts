/**
 * The dual-publish bridge, as a Sails hook (the "dual-publish" migration step).
 *
 * While it is on, every resourceful pub/sub event Sails emits to its own
 * sockets (`created`, `updated`, `destroyed`, `addedTo`, `removedFrom`) is
 * also queued for Bifrost's private API as
 *   {topic: "<model>:<id>", event: "<model>", data: <the same Sails payload>}
 * so that a client on Bifrost subscribed to `collection:c1` sees exactly what
 * a client on Sync subscribed to record c1 sees. Publishing is asynchronous
 * (see bridge-queue.ts): a slow or unreachable Bifrost never fails or delays
 * the Sync request that caused the event.
 *
 * Interception point: the model methods Sails' pubsub hook adds and every
 * blueprint calls — `_publishRPS` (per-record room broadcasts: the exact
 * payload is handed to it) and `_publishCreateSingle` (the class-room
 * broadcast of `created`, whose payload {verb, data, id} is rebuilt the same
 * way Sails builds it). Custom `Model.publish()` calls are not bridged.
 *
 * The hook also serves the bridge's counters on `GET /__bifrost/bridge` (JSON)
 * and `GET /__bifrost/metrics` (Prometheus, followed by Sync's request metrics
 * when given, see request-metrics.ts), and
 * `subscribeHeaderPolicy` adds `x-bifrost-subscribe: collection:<id>` to
 * single-record GET responses so Bifrost's legacy endpoint subscribes the
 * requesting socket to the record's topic.
 */
import { renderBridgeMetrics } from './bridge-metrics.ts';
import type { BridgePublishQueue, BridgeStats } from './bridge-queue.ts';
import type { SailsApp, SailsHookFactory, SailsPolicy, SailsPubsubModel } from './sails-types.ts';

/** Path of the bridge counters (JSON). */
export const BRIDGE_STATS_PATH = '/__bifrost/bridge';

/** Path of the bridge counters (Prometheus text format). */
export const BRIDGE_METRICS_PATH = '/__bifrost/metrics';

/** Name of the policy adding `x-bifrost-subscribe` (Sails lower-cases policy names). */
export const SUBSCRIBE_HEADER_POLICY_NAME = 'bifrostsubscribeheader';

/** The Bifrost topic of a record. */
export function topicOf(modelIdentity: string, id: unknown): string {
  return `${modelIdentity}:${String(id)}`;
}

/** Models already wrapped (the ORM can reload; a model is wrapped once). */
const bridgedModels = new WeakSet<object>();

/** Ids named by `_publishRPS`'s first argument (an id, a record, or an array of either). */
function idsOf(model: SailsPubsubModel, records: unknown): unknown[] {
  const list = Array.isArray(records) ? records : [records];
  return list
    .map((r) => (r !== null && typeof r === 'object' ? (r as Record<string, unknown>)[model.primaryKey] : r))
    .filter((id) => id !== undefined && id !== null && id !== '');
}

/** Makes one model's pubsub broadcasts also go to the queue. Idempotent. */
function bridgeModel(model: SailsPubsubModel, queue: BridgePublishQueue): void {
  if (bridgedModels.has(model)) return;
  bridgedModels.add(model);

  const publishRps = model._publishRPS;
  model._publishRPS = function bridgedPublishRPS(this: SailsPubsubModel, records, data, req) {
    publishRps.call(this, records, data, req);
    for (const id of idsOf(model, records)) queue.enqueue(topicOf(model.identity, id), model.identity, data);
  };

  const publishCreate = model._publishCreateSingle;
  model._publishCreateSingle = function bridgedPublishCreateSingle(this: SailsPubsubModel, values, req, options) {
    publishCreate.call(this, values, req, options);
    const id = values?.[model.primaryKey];
    if (id === undefined || id === null) return; // Sails refused it too
    queue.enqueue(topicOf(model.identity, id), model.identity, { verb: 'created', data: { ...values }, id });
  };
}

function bridgeAllModels(sails: SailsApp, queue: BridgePublishQueue): void {
  for (const model of Object.values(sails.models)) {
    if (typeof model?._publishRPS === 'function' && typeof model._publishCreateSingle === 'function') bridgeModel(model, queue);
  }
}

export interface BridgeHookOptions {
  /** The outbox; null when the bridge is off (the stats route still answers). */
  queue: BridgePublishQueue | null;
  stats: () => BridgeStats;
  /** More Prometheus text for `GET /__bifrost/metrics` (Sync's request metrics). */
  moreMetrics?: () => Promise<string>;
}

/** The hook definition, to pass as `hooks: {bifrostBridge: createBridgeHook(…)}`. */
export function createBridgeHook(opts: BridgeHookOptions): SailsHookFactory {
  return (sails) => ({
    initialize(done) {
      const queue = opts.queue;
      if (!queue) return done();
      // The pubsub hook augments models on `hook:orm:loaded`; wrap after it.
      sails.after('hook:pubsub:loaded', () => {
        bridgeAllModels(sails, queue);
        done();
      });
      sails.on('hook:pubsub:reloaded', () => bridgeAllModels(sails, queue));
    },
    routes: {
      before: {
        [`GET ${BRIDGE_STATS_PATH}`]: (_req, res) => {
          res.status(200).json(opts.stats());
        },
        [`GET ${BRIDGE_METRICS_PATH}`]: (_req, res) => {
          const bridge = renderBridgeMetrics(opts.stats());
          const more = opts.moreMetrics ? opts.moreMetrics() : Promise.resolve('');
          more.then(
            (text) => {
              res.set('content-type', 'text/plain; version=0.0.4; charset=utf-8');
              res.status(200).send(bridge + text);
            },
            (err: Error) => res.status(500).send(`metrics failed: ${err.message}`),
          );
        },
      },
    },
  });
}

/**
 * Policy for single-record reads (`<model>/findone`): on a successful read the
 * response carries `x-bifrost-subscribe: <model>:<id>`. It wraps `res.ok`, so
 * a 404 or an error carries no subscription.
 */
export function subscribeHeaderPolicy(modelIdentity: string): SailsPolicy {
  return (_req, res, next) => {
    const ok = res.ok;
    res.ok = function okWithSubscribe(this: unknown, data?: unknown) {
      const id = data !== null && typeof data === 'object' ? (data as Record<string, unknown>).id : undefined;
      if (id !== undefined && id !== null) res.set('x-bifrost-subscribe', topicOf(modelIdentity, id));
      return ok.call(this, data);
    };
    next();
  };
}
