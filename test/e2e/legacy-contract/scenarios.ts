/**
 * The legacy contract: what an unchanged Sync client may rely on, written once
 * and run against every target that claims to speak it (Sync itself, and
 * Bifrost's legacy endpoint in front of Sync), with each unchanged client
 * stack (sails.io.js 1.2.1 on socket.io-client 2, plain socket.io-client 4).
 *
 * Expectations are exact (status, body field by field; only ids chosen here
 * and timestamps are matched loosely), so two targets that pass the same list
 * answer the same thing.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signAccessToken } from '../../../gateway/token.ts';
import { LEGACY_CLIENT_KINDS, type LegacyClient, type LegacyClientOptions, type LegacyResponse } from '../../support/legacy-clients.ts';

/** A system under test, as the contract sees it. */
export interface LegacyTarget {
  /** The URL unchanged clients connect their socket to (what Godserver hands them). */
  readonly url: string;
  /** An access token the target accepts (ttl in seconds or "1h"; negative = already expired). */
  token(userId: string, teamId: string, ttl?: string | number): Promise<string>;
  /**
   * Components that can be restarted while clients stay connected; `restart`
   * resolves once the component accepts connections again at the same URL.
   * `dropsClientSockets`: the clients' sockets end at this component (so the
   * restart disconnects them and their own reconnect logic must bring them
   * back); false for a component behind the one clients connect to (e.g. Sync
   * behind Bifrost), whose restart the clients must not even notice.
   */
  readonly restarts: ReadonlyArray<{ name: string; dropsClientSockets: boolean; restart(): Promise<void> }>;
  /** Longest wait for an event to arrive. Default 5 000 ms. */
  readonly eventTimeoutMs?: number;
  close(): Promise<void>;
}

/** A `collection` event as Sails emits it. */
export interface CollectionEvent {
  verb: 'created' | 'updated' | 'destroyed' | string;
  id: string;
  data?: Record<string, unknown>;
  previous?: Record<string, unknown>;
}

const isEvent = (verb: string, id: string) => (e: CollectionEvent) => e?.verb === verb && e?.id === id;

/** The record body Sync answers for a collection. */
function collectionBody(fields: { id: string; workspace: string; name: string; data: unknown }) {
  return { ...fields, createdAt: expect.any(Number), updatedAt: expect.any(Number) };
}

/** Status, body and (when given) selected headers of a response, for exact comparison. */
function shape(res: LegacyResponse) {
  return { statusCode: res.statusCode, body: res.body };
}

/**
 * Registers the whole scenario list against one target. `makeTarget` runs once
 * (beforeAll); the target is closed afterwards.
 */
export function defineLegacyContract(targetName: string, makeTarget: () => Promise<LegacyTarget>): void {
  describe(`legacy contract against ${targetName}`, () => {
    let target: LegacyTarget;
    let eventTimeoutMs = 5_000;

    beforeAll(async () => {
      target = await makeTarget();
      eventTimeoutMs = target.eventTimeoutMs ?? eventTimeoutMs;
    });
    afterAll(async () => {
      await target?.close();
    });

    for (const { kind, connect } of LEGACY_CLIENT_KINDS) {
      describe(`with ${kind}`, () => {
        const open: LegacyClient[] = [];
        const uid = () => `${kind.startsWith('sails') ? 'sio2' : 'sio4'}-${randomUUID().slice(0, 8)}`;

        /** Connects one more client of this kind, closed after the test. */
        async function client(opts: Partial<LegacyClientOptions> & { user?: string } = {}): Promise<LegacyClient> {
          const token = opts.token ?? (await target.token(opts.user ?? 'u1', 't1'));
          const c = await connect({ url: target.url, token, ...opts });
          open.push(c);
          return c;
        }

        afterEach(async () => {
          await Promise.all(open.splice(0).map((c) => c.close()));
        });

        it('creates, reads, updates and destroys a collection over the socket', async () => {
          const c = await client();
          const id = `c1-${uid()}`;
          const fields = { id, workspace: 'w1', name: 'first', data: { items: [1, 2, 3], nested: { ok: true } } };

          const created = await c.request('post', '/collection', fields);
          expect(shape(created)).toEqual({ statusCode: 200, body: collectionBody(fields) });

          const read = await c.request('get', `/collection/${id}`);
          expect(shape(read)).toEqual({ statusCode: 200, body: created.body });

          const patched = await c.request('patch', `/collection/${id}`, { name: 'second' });
          expect(shape(patched)).toEqual({ statusCode: 200, body: collectionBody({ ...fields, name: 'second' }) });
          const patchedBody = patched.body as { createdAt: number; updatedAt: number };
          expect(patchedBody.createdAt).toBe((created.body as { createdAt: number }).createdAt);
          expect(patchedBody.updatedAt).toBeGreaterThanOrEqual(patchedBody.createdAt);

          const put = await c.request('put', `/collection/${id}`, { name: 'third', data: { replaced: true } });
          expect(shape(put)).toEqual({ statusCode: 200, body: collectionBody({ ...fields, name: 'third', data: { replaced: true } }) });

          const destroyed = await c.request('delete', `/collection/${id}`);
          expect(shape(destroyed)).toEqual({ statusCode: 200, body: put.body });

          const gone = await c.request('get', `/collection/${id}`);
          expect(shape(gone)).toEqual({ statusCode: 404, body: 'Not Found' });
        });

        it('creates a record without an id and gives it one', async () => {
          const c = await client();
          const res = await c.request('post', '/collection', { workspace: 'w1', name: 'no-id', data: null });
          expect(res.statusCode).toBe(200);
          const body = res.body as { id: unknown };
          expect(body).toEqual({ id: expect.any(String), workspace: 'w1', name: 'no-id', data: null, createdAt: expect.any(Number), updatedAt: expect.any(Number) });
          expect(shape(await c.request('get', `/collection/${body.id}`))).toEqual({ statusCode: 200, body });
        });

        it('lists collections with a where filter, in the data or in the query string', async () => {
          const c = await client();
          const wsA = `ws-a-${uid()}`;
          const wsB = `ws-b-${uid()}`;
          const records = [
            { id: `l1-${uid()}`, workspace: wsA, name: 'a1', data: 1 },
            { id: `l2-${uid()}`, workspace: wsB, name: 'b1', data: 2 },
            { id: `l3-${uid()}`, workspace: wsA, name: 'a2', data: 3 },
          ];
          for (const r of records) expect((await c.request('post', '/collection', r)).statusCode).toBe(200);
          const expected = records.filter((r) => r.workspace === wsA).map(collectionBody).sort((x, y) => x.name.localeCompare(y.name));

          const viaData = await c.request('get', '/collection', { where: { workspace: wsA }, sort: 'name ASC' });
          expect(shape(viaData)).toEqual({ statusCode: 200, body: expected });

          const qs = `where=${encodeURIComponent(JSON.stringify({ workspace: wsA }))}&sort=${encodeURIComponent('name ASC')}`;
          const viaQuery = await c.request('get', `/collection?${qs}`);
          expect(shape(viaQuery)).toEqual({ statusCode: 200, body: expected });

          const none = await c.request('get', '/collection', { where: { workspace: `nobody-${uid()}` } });
          expect(shape(none)).toEqual({ statusCode: 200, body: [] });
        });

        it('answers 404 for a missing record', async () => {
          const c = await client();
          const id = `missing-${uid()}`;
          expect(shape(await c.request('get', `/collection/${id}`))).toEqual({ statusCode: 404, body: 'Not Found' });
          expect(shape(await c.request('patch', `/collection/${id}`, { name: 'x' }))).toEqual({ statusCode: 404, body: 'Not Found' });
          expect((await c.request('delete', `/collection/${id}`)).statusCode).toBe(404);
        });

        it('answers 403 authenticationError for a bad, foreign, expired or missing token', async () => {
          const c = await client();
          const refused = { statusCode: 403, body: { error: { name: 'authenticationError', message: expect.any(String) } } };
          const foreign = await signAccessToken(`not-the-secret-${uid()}`, { userId: 'u1', teamId: 't1' });
          const expired = await target.token('u1', 't1', -10);
          for (const token of ['not-a-token', foreign, expired]) {
            expect(shape(await c.request('get', '/collection', undefined, { 'x-access-token': token }))).toEqual(refused);
            expect(shape(await c.request('post', '/collection', { name: 'x' }, { 'x-access-token': token }))).toEqual(refused);
          }
          expect(shape(await c.request('get', '/collection/any', undefined, { 'x-access-token': undefined }))).toEqual(refused);
          // The socket itself stays usable with a good token.
          expect((await c.request('get', '/collection', { where: { workspace: `none-${uid()}` } })).statusCode).toBe(200);
        });

        it('round-trips a 100 KiB data payload', async () => {
          const c = await client();
          const id = `big-${uid()}`;
          const blob = Array.from({ length: 100 * 1024 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
          const data = { blob, list: Array.from({ length: 100 }, (_, i) => ({ i, s: `item-${i}` })) };
          const created = await c.request('post', '/collection', { id, workspace: 'w1', name: 'big', data });
          expect(created.statusCode).toBe(200);
          const read = await c.request('get', `/collection/${id}`);
          expect(read.statusCode).toBe(200);
          expect((read.body as { data: typeof data }).data).toEqual(data);
          expect(((read.body as { data: typeof data }).data.blob as string).length).toBe(100 * 1024);
        });

        it('delivers updated and destroyed events of c1 to a socket that read c1, and nothing to one that did not', async () => {
          const writer = await client({ user: 'writer' });
          const reader = await client({ user: 'reader' });
          const bystander = await client({ user: 'bystander' });
          const c1 = `c1-${uid()}`;
          const marker = `marker-${uid()}`;
          const fields = { id: c1, workspace: 'w1', name: 'before', data: { v: 1 } };
          expect((await writer.request('post', '/collection', fields)).statusCode).toBe(200);
          expect((await writer.request('post', '/collection', { id: marker, workspace: 'w1', name: 'm0', data: null })).statusCode).toBe(200);

          // reader reads c1 and the marker; the bystander reads only the marker.
          expect((await reader.request('get', `/collection/${c1}`)).statusCode).toBe(200);
          expect((await reader.request('get', `/collection/${marker}`)).statusCode).toBe(200);
          expect((await bystander.request('get', `/collection/${marker}`)).statusCode).toBe(200);

          const updated = await writer.request('patch', `/collection/${c1}`, { name: 'after' });
          expect(updated.statusCode).toBe(200);
          const updateEvent = await reader.waitFor<CollectionEvent>('collection', isEvent('updated', c1), eventTimeoutMs);
          expect(updateEvent).toEqual({
            verb: 'updated',
            id: c1,
            data: expect.objectContaining({ name: 'after' }),
            previous: collectionBody(fields),
          });

          expect((await writer.request('delete', `/collection/${c1}`)).statusCode).toBe(200);
          const destroyEvent = await reader.waitFor<CollectionEvent>('collection', isEvent('destroyed', c1), eventTimeoutMs);
          expect(destroyEvent).toEqual({ verb: 'destroyed', id: c1, previous: collectionBody({ ...fields, name: 'after' }) });

          // A later event both sockets are subscribed to bounds the wait for absence:
          // once the bystander has the marker's update, c1's events would have come first.
          expect((await writer.request('patch', `/collection/${marker}`, { name: 'm1' })).statusCode).toBe(200);
          await bystander.waitFor<CollectionEvent>('collection', isEvent('updated', marker), eventTimeoutMs);
          await reader.waitFor<CollectionEvent>('collection', isEvent('updated', marker), eventTimeoutMs);
          expect(bystander.received<CollectionEvent>('collection').filter((e) => e.id === c1)).toEqual([]);
          // The writer's own changes are not echoed to it (Sails omits the requesting socket).
          expect(writer.received<CollectionEvent>('collection').filter((e) => e.id === c1)).toEqual([]);
          // And the reader got c1's events exactly once each, in order.
          expect(reader.received<CollectionEvent>('collection').filter((e) => e.id === c1).map((e) => e.verb)).toEqual(['updated', 'destroyed']);
        });

        it('keeps working after each restartable component restarts, reconnecting by its own logic where its socket was cut', async () => {
          expect(target.restarts.length).toBeGreaterThan(0);
          for (const { name, dropsClientSockets, restart } of target.restarts) {
            const c = await client();
            const watcher = await client({ user: 'watcher' });
            await restart();
            if (dropsClientSockets) {
              await c.waitForConnectCount(2, 20_000).catch((err: Error) => {
                throw new Error(`after the ${name} restart: ${err.message}`);
              });
              await watcher.waitForConnectCount(2, 20_000);
            } else {
              expect(c.connectCount(), `${name} restart must not cut client sockets`).toBe(1);
            }

            const id = `after-${name}-${uid()}`;
            const fields = { id, workspace: 'w1', name: 'back', data: { restarted: name } };
            expect(shape(await c.request('post', '/collection', fields)), `create after ${name} restart`).toEqual({ statusCode: 200, body: collectionBody(fields) });
            expect((await watcher.request('get', `/collection/${id}`)).statusCode).toBe(200);
            expect((await c.request('patch', `/collection/${id}`, { name: 'again' })).statusCode).toBe(200);
            await watcher.waitFor<CollectionEvent>('collection', (e) => e.verb === 'updated' && e.id === id && e.data?.name === 'again', eventTimeoutMs);
            await Promise.all(open.splice(0).map((x) => x.close()));
          }
        });
      });
    }
  });
}
