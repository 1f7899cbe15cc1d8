/**
 * Hostile input against a real gateway process: thousands of generated frames,
 * hostile upgrades, garbage socket.io packets and abusive private API calls.
 * The process must stay up, its heap come back near its baseline, every case
 * get its documented answer, and a well-behaved client connected all along
 * must see every event. Counts are printed.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { NativeClient, upgradeStatus } from '../support/native-client.ts';
import { privateCall, spawnGateway, token, TEST_SECRET, TEST_SERVICE_TOKEN, type GatewayProcess } from '../support/gateway.ts';

let gw: GatewayProcess;
let bystander: NativeClient;
let published = 0;
let stopPublisher: () => Promise<void>;
const counts: Record<string, number> = {};
const count = (k: string, n = 1) => (counts[k] = (counts[k] ?? 0) + n);

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Announces a body over the limit: the server refuses it from Content-Length
 * alone (413), so the body is never sent — sending it would race the server
 * closing the connection (EPIPE).
 */
function oversizedPost(url: string, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { authorization: `Bearer ${TEST_SERVICE_TOKEN}`, 'content-type': 'application/json', 'content-length': bytes } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', (err) => reject(err));
    req.flushHeaders();
    setTimeout(() => reject(new Error('no answer to an oversized Content-Length within 5 s')), 5000).unref();
  });
}

async function heapUsed(): Promise<number> {
  const load = await (await fetch(gw.publicUrl + '/load')).json();
  return load.values.heap as number;
}

beforeAll(async () => {
  gw = await spawnGateway({ REDIS_URL: '' });
  bystander = await NativeClient.connect(gw.publicUrl, await token('bystander', 'b'));
  await bystander.call({ op: 'subscribe', topic: 'user:bystander' });
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const r = await privateCall(gw.privateUrl, 'POST', '/v1/publish', { topic: 'user:bystander', event: 'tick', data: { n: published } }).catch(() => undefined);
      if (r?.status === 200) published++;
      await new Promise((res) => setTimeout(res, 50));
    }
  })();
  stopPublisher = async () => {
    stop = true;
    await loop;
  };
});

afterAll(async () => {
  await stopPublisher?.();
  bystander?.close();
  await gw?.stop();
  console.log(`hostile input: ${JSON.stringify(counts)}`);
});

function openRaw(t: string): Promise<{ ws: WebSocket; frames: any[]; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gw.publicUrl.replace('http', 'ws')}/ws?token=${t}`, { maxPayload: 64 * 1024 * 1024 });
    const frames: any[] = [];
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    ws.on('message', (d) => frames.push(JSON.parse(String(d))));
    ws.on('error', () => {});
    ws.once('open', () => resolve({ ws, frames, closed }));
    ws.once('unexpected-response', () => reject(new Error('refused')));
  });
}

describe('hostile input', () => {
  it('answers thousands of generated native frames with their documented errors', async () => {
    const t = await token('fuzz', 'f');
    const rand = rng(20261128);
    const { ws, frames } = await openRaw(t);
    const generators: [string, () => string | Buffer][] = [
      ['random-json-ish', () => JSON.stringify({ op: ['subscribe', 'request', 'ping', 'x', 42][Math.floor(rand() * 5)], topic: rand() > 0.5 ? 'user:fuzz' : Math.floor(rand() * 1e9), id: rand() > 0.3 ? Math.floor(rand() * 1e6) : { nested: true } })],
      ['garbage-text', () => Array.from({ length: 1 + Math.floor(rand() * 200) }, () => String.fromCharCode(32 + Math.floor(rand() * 90))).join('')],
      ['huge-number', () => `{"op":"ping","id":1e${Math.floor(rand() * 400)}}`],
      ['deep-nesting', () => '['.repeat(1000) + ']'.repeat(1000)],
      ['deep-object', () => '{"a":'.repeat(1000) + '1' + '}'.repeat(1000)],
      ['proto-keys', () => '{"__proto__":{"op":"ping"},"constructor":{"prototype":{"polluted":1}},"op":"subscribe","topic":"user:fuzz"}'],
      ['request-fields', () => JSON.stringify({ op: 'request', service: rand() > 0.5 ? 'nope' : '', method: 'GET', path: rand() > 0.5 ? '/../x' : 'x' })],
      ['binary', () => Buffer.from(Array.from({ length: 64 }, () => Math.floor(rand() * 256)))],
    ];
    const N = 3000;
    for (let i = 0; i < N; i++) {
      const [name, gen] = generators[i % generators.length]!;
      const payload = gen();
      ws.send(payload, { binary: Buffer.isBuffer(payload) });
      count(`native:${name}`);
      if (i % 150 === 149) await new Promise((r) => setTimeout(r, 1100)); // stay under the op rate limit
    }
    await new Promise((r) => setTimeout(r, 1500));
    expect(ws.readyState).toBe(WebSocket.OPEN);
    // Every frame got an answer (error, pong or ok); none crashed anything.
    expect(frames.length).toBeGreaterThanOrEqual(N * 0.95);
    const codes = new Set(frames.filter((f) => f.op === 'error').map((f) => f.code));
    for (const c of codes) expect(['badRequest', 'forbiddenError', 'invalidServiceError', 'invalidPathError', 'throttleError']).toContain(c);
    expect(codes.has('badRequest')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    count('native:answers', frames.length);
    ws.terminate();
  }, 120_000);

  it('closes on invalid UTF-8 (1007) and on a 10 MB frame (1009)', async () => {
    const t = await token('fuzz2', 'f');
    const a = await openRaw(t);
    // A text frame whose bytes are not UTF-8: ws refuses it.
    (a.ws as unknown as { _sender: { send(d: Buffer, o: object): void } })._sender.send(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { binary: false, fin: true, opcode: 1, mask: true, readOnly: false });
    expect(await a.closed).toBe(1007);
    count('native:invalid-utf8');
    const b = await openRaw(t);
    b.ws.send('x'.repeat(10 * 1024 * 1024));
    expect(await b.closed).toBe(1009);
    count('native:10MB-frame');
  });

  it('refuses hostile upgrades with the documented HTTP status', async () => {
    const ws = gw.publicUrl + '/ws';
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const cases: [string, Promise<number>, number][] = [
      ['no-token', upgradeStatus(ws), 401],
      ['expired', token('x', 't', -60).then((t) => upgradeStatus(`${ws}?token=${t}`)), 401],
      ['alg-none', upgradeStatus(`${ws}?token=${b64({ alg: 'none' })}.${b64({ sub: 'x', team: 't', exp })}.`), 401],
      ['wrong-secret', token('x', 't', '1h', 'not-the-secret').then((t) => upgradeStatus(`${ws}?token=${t}`)), 401],
      ['hs512', new SignJWT({ team: 't' }).setProtectedHeader({ alg: 'HS512' }).setSubject('x').setExpirationTime('1h').sign(new TextEncoder().encode(TEST_SECRET + TEST_SECRET)).then((t) => upgradeStatus(`${ws}?token=${t}`)), 401],
      ['oversized-headers', token().then((t) => upgradeStatus(`${ws}?token=${t}`, { 'x-junk': 'j'.repeat(20_000) })), 431],
    ];
    for (const [name, status, want] of cases) {
      expect(await status, name).toBe(want);
      count(`upgrade:${name}`);
    }
    // CRLF smuggled into a header value: the HTTP parser refuses the request.
    const crlf = await new Promise<string>((resolve) => {
      const sock = net.connect(Number(new URL(gw.publicUrl).port), '127.0.0.1', () => {
        sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Evil: a\rb\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      });
      let out = '';
      sock.on('data', (d) => (out += d));
      sock.on('close', () => resolve(out));
      sock.on('error', () => resolve(out));
      setTimeout(() => sock.destroy(), 3000);
    });
    expect(crlf.startsWith('HTTP/1.1 400')).toBe(true);
    count('upgrade:crlf-in-header');
  });

  it('survives garbage socket.io packets on the legacy endpoint', async () => {
    const rand = rng(7);
    let closedByServer = 0;
    for (let i = 0; i < 200; i++) {
      const ws = new WebSocket(`${gw.publicUrl.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
      ws.on('error', () => {});
      await new Promise<void>((resolve) => {
        ws.once('open', () => {
          const junk = ['4' + '{'.repeat(50), '42["get",' + '['.repeat(500), '\u0000\u0001', '40/nope,', '42["get",{"url":5},1]', String(rand())][i % 6]!;
          ws.send(junk);
          ws.send(Buffer.from([0xff, 0x00, 0x13]));
          setTimeout(() => {
            if (ws.readyState !== WebSocket.OPEN) closedByServer++;
            ws.terminate();
            resolve();
          }, 20);
        });
        ws.once('unexpected-response', () => resolve());
        ws.once('close', () => resolve());
      });
      count('legacy:garbage-packet');
    }
    count('legacy:closed-by-server', closedByServer);
    expect((await fetch(gw.publicUrl + '/healthz')).status).toBe(200);
  });

  it('answers abusive private API calls with their documented status', async () => {
    const base = gw.privateUrl;
    const t = await token('p', 't');
    const cases: [string, () => Promise<number>, number][] = [
      ['no-token', async () => (await fetch(base + '/v1/services')).status, 401],
      ['wrong-token', async () => (await fetch(base + '/v1/services', { headers: { authorization: 'Bearer x' } })).status, 401],
      ['basic-auth', async () => (await fetch(base + '/v1/services', { headers: { authorization: 'Basic ' + Buffer.from('a:b').toString('base64') } })).status, 401],
      ['publish-no-topic', async () => (await privateCall(base, 'POST', '/v1/publish', { event: 'e' })).status, 400],
      ['publish-extra-field', async () => (await privateCall(base, 'POST', '/v1/publish', { topic: 't', event: 'e', evil: 1 })).status, 400],
      ['publish-newline-event', async () => (await privateCall(base, 'POST', '/v1/publish', { topic: 't', event: 'a\nb' })).status, 400],
      ['publish-control-topic', async () => (await privateCall(base, 'POST', '/v1/publish', { topic: 'a\u0000b', event: 'e' })).status, 400],
      ['publish-2MB', () => oversizedPost(base + '/v1/publish', 2e6), 413],
      ['not-json', async () => (await fetch(base + '/v1/publish', { method: 'POST', headers: { authorization: `Bearer ${TEST_SERVICE_TOKEN}`, 'content-type': 'application/json' }, body: '{nope' })).status, 400],
      ['service-bad-upstream', async () => (await privateCall(base, 'PUT', '/v1/services/x', { upstream: 'javascript:alert(1)', prefixes: ['/'] })).status, 400],
      ['service-bad-name', async () => (await privateCall(base, 'PUT', '/v1/services/..%2f..', { upstream: 'http://a', prefixes: ['/'] })).status, 400],
      ['proxy-escape', async () => (await privateCall(base, 'POST', '/v1/proxy', { service: 'x', method: 'GET', path: '/%2e%2e/etc' }, { 'x-access-token': t })).status, 400],
      ['proxy-no-user-token', async () => (await privateCall(base, 'POST', '/v1/proxy', { service: 'x', method: 'GET', path: '/a' })).status, 401],
      ['history-bad-since', async () => (await privateCall(base, 'GET', '/v1/topics/x/history?since=abc')).status, 400],
      ['unknown-route', async () => (await privateCall(base, 'GET', '/v1/../../etc/passwd')).status, 404],
      ['connections-no-target', async () => (await privateCall(base, 'POST', '/v1/connections/disconnect', {})).status, 400],
    ];
    for (let round = 0; round < 20; round++) {
      for (const [name, call, want] of cases) {
        expect(await call(), name).toBe(want);
        count(`private:${name}`);
      }
    }
  }, 120_000);

  it('kept serving the well-behaved client every event, and its heap came back', async () => {
    await stopPublisher();
    await bystander.waitEvents(published, 20_000);
    expect(bystander.events.map((e) => (e.data as { n: number }).n)).toEqual(Array.from({ length: published }, (_, i) => i));
    expect(gw.child.exitCode).toBeNull();
    let heap = await heapUsed();
    for (let i = 0; i < 20 && heap > 150 * 1024 * 1024; i++) {
      await new Promise((r) => setTimeout(r, 500));
      heap = await heapUsed();
    }
    console.log(`hostile input: bystander got ${published} events; gateway heap ${(heap / 1048576).toFixed(1)} MiB at the end`);
    expect(heap).toBeLessThan(150 * 1024 * 1024);
  }, 60_000);
});
