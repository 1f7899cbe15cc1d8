/**
 * The bare `ws` reference node: one ioredis subscriber, one SUBSCRIBE per topic
 * with local sockets, and the naive loop on every message. A connection names
 * its topic in the query (`/?topic=t5`); it is ready when open (the Redis
 * subscription is made before the upgrade completes).
 * Usage: ws-server.ts --port P --redis URL --prefix P   (prints {"ready":true})
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';

const { values } = parseArgs({ options: { port: { type: 'string' }, redis: { type: 'string' }, prefix: { type: 'string' } } });
const prefix = values.prefix ?? '';
const sub = new Redis(values.redis!);
const rooms = new Map<string, Set<WebSocket>>();
const server = http.createServer((req, res) => {
  if (req.url === '/bench-stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss }));
  } else {
    res.statusCode = 404;
    res.end();
  }
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
server.on('upgrade', (req, socket, head) => {
  const topic = new URL(req.url ?? '/', 'http://x').searchParams.get('topic');
  const join = async (): Promise<void> => {
    if (topic && !rooms.has(topic)) {
      rooms.set(topic, new Set());
      await sub.subscribe(prefix + topic);
    }
  };
  join().then(
    () =>
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (!topic) return;
        const room = rooms.get(topic)!;
        room.add(ws);
        ws.on('close', () => room.delete(ws));
      }),
    () => socket.destroy(),
  );
});
sub.on('message', (channel: string, message: string) => {
  const room = rooms.get(channel.slice(prefix.length));
  if (!room) return;
  for (const ws of room) ws.send(message);
});
server.listen(Number(values.port), '127.0.0.1', () => process.stdout.write(JSON.stringify({ ready: true, port: Number(values.port) }) + '\n'));
process.on('SIGTERM', () => process.exit(0));
