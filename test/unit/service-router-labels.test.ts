/**
 * Which service name an error of ServiceRouter carries (it becomes the
 * `service` label of bifrost_requests_total): a registered service's name,
 * also when the router found it in the store rather than in its cache (it was
 * registered on another node a moment ago); never a name the client made up.
 * On the embedded broker (the real store, no fake).
 */
import { describe, expect, it } from 'vitest';
import { MemoryBroker } from '../../gateway/broker-memory.ts';
import { GatewayError } from '../../gateway/errors.ts';
import { ServiceRouter } from '../../gateway/service-router.ts';

const request = (service: string, path: string) => ({ service, method: 'GET', path, token: 't', claims: { userId: 'u', teamId: 't' } as never });

describe('service labels on routing errors', () => {
  it('names a service found in the store but not yet in the cache; never a made-up one', async () => {
    const broker = new MemoryBroker();
    const router = new ServiceRouter(broker, { timeoutMs: 1000, maxResponseBytes: 1024, nodeId: 'n1', cacheMs: 60_000 });
    expect(await router.services()).toEqual([]); // the table is now cached, empty, for a minute
    // Registered elsewhere (another node's private API); its control message has not reached this node.
    await broker.putService({ name: 'late', upstream: 'http://127.0.0.1:1', prefixes: ['/in'] });

    const outside = await router.forward(request('late', '/out')).catch((e: unknown) => e);
    expect(outside).toBeInstanceOf(GatewayError);
    expect(outside).toMatchObject({ code: 'invalidPathError', service: 'late' });

    const madeUp = await router.forward(request('no-such-service', '/x')).catch((e: unknown) => e);
    expect(madeUp).toMatchObject({ code: 'invalidServiceError' });
    expect((madeUp as GatewayError).service).toBeUndefined();
    await broker.close();
  });
});
