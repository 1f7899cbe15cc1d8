/**
 * The subscriber-gap drill shared by the Redis tests: events 0…60 on one
 * topic, with the node's pub/sub connection cut after event 0 and events 1…50
 * published at once while it comes back. The client must get all 61, in
 * order, exactly once.
 */
import { expect } from 'vitest';
import type { NativeClient } from './native-client.ts';

export async function expectNoGapAcrossCut(c: NativeClient, publish: (n: number) => Promise<{ status: number }>, cut: () => unknown): Promise<void> {
  expect((await publish(0)).status).toBe(200);
  await c.waitEvents(1);
  await cut();
  for (let i = 1; i <= 50; i++) expect((await publish(i)).status).toBe(200);
  await c.waitEvents(51, 15_000);
  for (let i = 51; i <= 60; i++) expect((await publish(i)).status).toBe(200);
  await c.waitEvents(61, 15_000);
  await new Promise((r) => setTimeout(r, 100)); // no late duplicate
  expect(c.events.map((e) => e.data)).toEqual(Array.from({ length: 61 }, (_, i) => i));
}
