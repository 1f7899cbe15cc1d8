/**
 * A Sails hook that counts every request into `SyncRequestMetrics`: one
 * catch-all route bound before the app's own routes (`/*`, every verb), which
 * Sails runs for HTTP requests and for socket virtual requests alike. It
 * wraps `res.end` — both kinds of `res` go through it exactly once — and
 * records the status and the time since the request was routed. Requests to
 * `/__bifrost/…` (the metrics scrape itself, the bridge counters) are not
 * counted, so a ramp's scraping does not dilute Sync's figures.
 */
import type { SailsHookFactory, SailsRequest, SailsResponse } from './sails-types.ts';
import type { SyncRequestMetrics } from './request-metrics.ts';

/** Paths not counted: Bifrost's own endpoints on Sync. */
export const UNCOUNTED_PATH_PREFIX = '/__bifrost/';

type EndableResponse = SailsResponse & { end: (...args: unknown[]) => unknown; statusCode?: number };

/** The hook definition, to pass as `hooks: {bifrostRequestMetrics: createRequestMetricsHook(…)}`. */
export function createRequestMetricsHook(metrics: SyncRequestMetrics): SailsHookFactory {
  return () => ({
    routes: {
      before: {
        '/*': (req: SailsRequest, res: SailsResponse, next) => {
          const path = req.path ?? req.url ?? '';
          const r = res as EndableResponse;
          if (path.startsWith(UNCOUNTED_PATH_PREFIX) || typeof r.end !== 'function') return next();
          const started = process.hrtime.bigint();
          const end = r.end;
          let counted = false;
          r.end = function countedEnd(this: unknown, ...args: unknown[]) {
            const out = end.apply(this, args);
            if (!counted) {
              counted = true;
              metrics.observe(r.statusCode || 200, Number(process.hrtime.bigint() - started) / 1e9);
            }
            return out;
          };
          next();
        },
      },
    },
  });
}
