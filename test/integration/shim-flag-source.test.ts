/**
 * The flag source with the real LaunchDarkly SDK: flags-file reloads that
 * survive atomic renames, garbage that never replaces good flags, bucketing by
 * user or team with a stable salt, and "sync" whenever the SDK cannot answer.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileFlagSource, LiveFlagSource } from '../../proxy/flag-source.ts';
import { FLAG_KEY, buildFlag, writeRollout } from '../../proxy/flags-file.ts';

const log = pino({ level: 'silent' });
let dir: string;
let file: string;
let source: FileFlagSource | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bifrost-flagsrc-'));
  file = join(dir, 'flags.json');
});
afterEach(async () => {
  await source?.close();
  source = undefined;
  await rm(dir, { recursive: true, force: true });
});

const users = Array.from({ length: 40 }, (_, i) => ({ userId: `user-${i}`, teamId: `team-${i % 7}` }));

async function routes(src: FileFlagSource, people = users): Promise<string[]> {
  return Promise.all(people.map(async (u) => (await src.decide(u.userId, u.teamId)).route));
}

/** Waits until every user decides `route`; returns the elapsed ms, fails after `limitMs`. */
async function allOn(src: FileFlagSource, route: 'sync' | 'bifrost', limitMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const r = await routes(src);
    if (r.every((x) => x === route)) return Date.now() - start;
    if (Date.now() - start > limitMs) throw new Error(`not every user on ${route} within ${limitMs} ms: ${r.filter((x) => x === route).length}/${r.length}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe('flags file through the LaunchDarkly SDK', () => {
  it('creates the file at 0% on first start: everyone on sync, by a real flag evaluation', async () => {
    source = new FileFlagSource({ file, log });
    await source.start();
    const json = JSON.parse(await readFile(file, 'utf8'));
    expect(json.flags[FLAG_KEY].fallthrough.rollout.variations[0].weight).toBe(0);
    const d = await source.decide('u1', 't1');
    expect(d).toEqual({ route: 'sync', reason: 'flag' });
    expect(source.rollout()).toMatchObject({ percent: 0, bucketBy: 'user' });
  });

  it('applies each of six consecutive atomic (renamed) writes within 2 s', async () => {
    source = new FileFlagSource({ file, log });
    await source.start();
    let changes = 0;
    source.onChange(() => changes++);
    const targets: Array<'bifrost' | 'sync'> = ['bifrost', 'sync', 'bifrost', 'sync', 'bifrost', 'sync'];
    for (const [i, route] of targets.entries()) {
      await writeRollout(file, { percent: route === 'bifrost' ? 100 : 0, bucketBy: i % 2 ? 'team' : 'user' });
      await allOn(source, route, 2000);
    }
    expect(source.stats().reloads).toBeGreaterThanOrEqual(7);
    expect(changes).toBeGreaterThanOrEqual(6);
  });

  it('applies hand-made renames of a file written elsewhere (mv over the file), repeatedly', async () => {
    await writeRollout(file, { percent: 0, bucketBy: 'user' });
    source = new FileFlagSource({ file, log });
    await source.start();
    for (let i = 0; i < 5; i++) {
      const other = join(dir, `staging-${i}.json`);
      const staging = join(dir, 'staging', 'flags.json');
      await writeRollout(staging, { percent: i % 2 === 0 ? 100 : 0, bucketBy: 'user' });
      await writeFile(other, await readFile(staging));
      await rename(other, file);
      await allOn(source, i % 2 === 0 ? 'bifrost' : 'sync', 2000);
    }
  });

  it('keeps the last good flags when the file turns to garbage, logs and counts the error, then recovers', async () => {
    await writeRollout(file, { percent: 100, bucketBy: 'user' });
    const errors: string[] = [];
    const lines: { level: number; msg: string; err?: string }[] = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    source = new FileFlagSource({ file, log: capture, events: { onReloadError: (e) => errors.push(e.message) } });
    await source.start();
    await allOn(source, 'bifrost', 2000);
    await writeFile(file + '.tmp', '{"flags": {"bifrost-sync-migration": ');
    await rename(file + '.tmp', file);
    const deadline = Date.now() + 2000;
    while (source.stats().reloadErrors === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(source.stats().reloadErrors).toBe(1);
    expect(source.stats().lastReloadError).toMatch(/not valid JSON/);
    expect(errors).toHaveLength(1);
    const logged = lines.filter((l) => l.level === 50 && l.msg === 'flags file refused; the last good flags stay in force');
    expect(logged).toHaveLength(1);
    expect(logged[0]!.err).toMatch(/not valid JSON/);
    // still the last good flags
    expect((await routes(source)).every((r) => r === 'bifrost')).toBe(true);
    // a structurally wrong flag is garbage too
    await writeFile(file, JSON.stringify({ flags: { [FLAG_KEY]: { key: FLAG_KEY, on: true, variations: ['sync', 'bifrost'], fallthrough: {} } } }));
    while (source.stats().reloadErrors < 2 && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 20));
    expect(source.stats().reloadErrors).toBe(2);
    expect((await routes(source)).every((r) => r === 'bifrost')).toBe(true);
    // and a good write after garbage is applied (writeRollout refuses to overwrite garbage, so write by hand)
    await rm(file);
    await writeRollout(file, { percent: 0, bucketBy: 'user' });
    await allOn(source, 'sync', 2000);
  });

  it('keeps the last good flags when an atomic write brings rules or segments the SDK would throw on, and reports the refusal', async () => {
    await writeRollout(file, { percent: 100, bucketBy: 'user' });
    const errors: string[] = [];
    source = new FileFlagSource({ file, log, events: { onReloadError: (e) => errors.push(e.message) } });
    await source.start();
    await allOn(source, 'bifrost', 2000);
    const zero = buildFlag({ percent: 0, bucketBy: 'user' }, 'salt', 50);
    const waitErrors = async (n: number): Promise<void> => {
      const deadline = Date.now() + 2000;
      while (source!.stats().reloadErrors < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(source!.stats().reloadErrors).toBe(n);
    };
    await writeFile(file + '.tmp', JSON.stringify({ flags: { [FLAG_KEY]: { ...zero, rules: [null] } } }));
    await rename(file + '.tmp', file);
    await waitErrors(1);
    expect(errors[0]).toBe('flags["bifrost-sync-migration"].rules[0] must be an object');
    expect((await routes(source)).every((r) => r === 'bifrost')).toBe(true);
    expect(source.rollout()).toMatchObject({ percent: 100 });
    // The same for a segment whose rule the SDK could not store.
    await writeFile(file + '.tmp', JSON.stringify({ flags: { [FLAG_KEY]: zero }, segments: { s: { key: 's', version: 1, rules: [{ clauses: {} }] } } }));
    await rename(file + '.tmp', file);
    await waitErrors(2);
    expect(errors[1]).toBe('segments["s"].rules[0].clauses must be an array');
    expect((await routes(source)).every((r) => r === 'bifrost')).toBe(true);
    // A good write afterwards is applied (writeRollout refuses to overwrite garbage, so write by hand).
    await writeFile(file + '.tmp', JSON.stringify({ flags: { [FLAG_KEY]: zero } }));
    await rename(file + '.tmp', file);
    await allOn(source, 'sync', 2000);
  });

  it('a file without the flag evaluates to sync with the SDK error counted as the reason', async () => {
    await writeRollout(file, { percent: 100, bucketBy: 'user' });
    source = new FileFlagSource({ file, log });
    await source.start();
    expect((await source.decide('u1', 't1')).route).toBe('bifrost');
    await writeFile(file, JSON.stringify({ flags: {} }));
    await allOn(source, 'sync', 2000);
    expect(await source.decide('u1', 't1')).toEqual({ route: 'sync', reason: 'error', detail: 'FLAG_NOT_FOUND' });
  });

  it('raising the percentage only adds users (stable salt), and lowering removes the last added', async () => {
    const people = Array.from({ length: 1000 }, (_, i) => ({ userId: `u-${i}`, teamId: `t-${i % 50}` }));
    source = new FileFlagSource({ file, log });
    await source.start();
    const onBifrost = async (): Promise<Set<string>> => {
      const r = await routes(source!, people);
      return new Set(people.filter((_, i) => r[i] === 'bifrost').map((p) => p.userId));
    };
    const sets: Set<string>[] = [];
    for (const percent of [10, 30, 60, 30]) {
      const before = source.stats().reloads;
      await writeRollout(file, { percent, bucketBy: 'user' });
      await source.reload();
      expect(source.stats().reloads).toBe(before + 1);
      sets.push(await onBifrost());
    }
    const [s10, s30, s60, s30again] = sets as [Set<string>, Set<string>, Set<string>, Set<string>];
    for (const u of s10) expect(s30.has(u)).toBe(true);
    for (const u of s30) expect(s60.has(u)).toBe(true);
    expect([...s30again].sort()).toEqual([...s30].sort());
    expect(s10.size / 1000).toBeGreaterThan(0.06);
    expect(s10.size / 1000).toBeLessThan(0.14);
    expect(s60.size / 1000).toBeGreaterThan(0.54);
    expect(s60.size / 1000).toBeLessThan(0.66);
  });

  it('bucketing by team puts every member of a team on the same route', async () => {
    const people = Array.from({ length: 600 }, (_, i) => ({ userId: `m-${i}`, teamId: `team-${i % 40}` }));
    source = new FileFlagSource({ file, log });
    await source.start();
    await writeRollout(file, { percent: 50, bucketBy: 'team' });
    await source.reload();
    const r = await routes(source, people);
    const byTeam = new Map<string, Set<string>>();
    people.forEach((p, i) => byTeam.set(p.teamId, (byTeam.get(p.teamId) ?? new Set()).add(r[i]!)));
    for (const set of byTeam.values()) expect(set.size).toBe(1);
    const teamsOnBifrost = [...byTeam.values()].filter((s) => s.has('bifrost')).length;
    expect(teamsOnBifrost).toBeGreaterThan(5);
    expect(teamsOnBifrost).toBeLessThan(35);
  });
});

/** A stand-in for LaunchDarkly's streaming service: the SSE `put` / `patch` events the SDK reads from `/all`. */
async function startFakeStream(): Promise<{ url: string; requests: { path: string; auth: string | undefined }[]; send(event: string, data: unknown): void; close(): Promise<void> }> {
  const clients = new Set<http.ServerResponse>();
  const requests: { path: string; auth: string | undefined }[] = [];
  let initial = '';
  const server = http.createServer((req, res) => {
    requests.push({ path: req.url ?? '', auth: req.headers.authorization });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(initial);
    clients.add(res);
    res.on('close', () => clients.delete(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    send(event, data) {
      const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
      if (event === 'put') initial = frame;
      for (const c of clients) c.write(frame);
    },
    close: () =>
      new Promise<void>((r) => {
        for (const c of clients) c.destroy();
        server.close(() => r());
      }),
  };
}

describe('live LaunchDarkly mode', () => {
  it('evaluates the flag LaunchDarkly streams, and reports each change', async () => {
    const ld = await startFakeStream();
    ld.send('put', { path: '/', data: { flags: { [FLAG_KEY]: buildFlag({ percent: 100, bucketBy: 'user' }, 'live-salt', 7) }, segments: {} } });
    const live = new LiveFlagSource({
      sdkKey: 'sdk-live-test',
      log,
      sdkOptions: { streamUri: ld.url, baseUri: ld.url, eventsUri: ld.url, sendEvents: false, diagnosticOptOut: true },
    });
    try {
      await live.start(5000);
      expect(ld.requests[0]).toEqual({ path: '/all', auth: 'sdk-live-test' });
      expect(await live.decide('u1', 't1')).toEqual({ route: 'bifrost', reason: 'flag' });
      const changed = new Promise<void>((r) => live.onChange(r));
      ld.send('patch', { path: `/flags/${FLAG_KEY}`, data: buildFlag({ percent: 0, bucketBy: 'user' }, 'live-salt', 8) });
      await changed;
      expect(await live.decide('u1', 't1')).toEqual({ route: 'sync', reason: 'flag' });
    } finally {
      await live.close();
      await ld.close();
    }
  });

  it('answers sync (not ready) while LaunchDarkly cannot be reached', async () => {
    const live = new LiveFlagSource({
      sdkKey: 'sdk-test-key',
      log,
      sdkOptions: { streamUri: 'http://127.0.0.1:9', baseUri: 'http://127.0.0.1:9', eventsUri: 'http://127.0.0.1:9', sendEvents: false, diagnosticOptOut: true },
    });
    try {
      await live.start(300);
      expect(await live.decide('u1', 't1')).toEqual({ route: 'sync', reason: 'not_ready', detail: 'CLIENT_NOT_READY' });
      expect(live.rollout()).toBeUndefined();
    } finally {
      await live.close();
    }
  });
});
