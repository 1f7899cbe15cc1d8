/**
 * One Socket.IO 4 node with the Redis adapter, as its documentation sets it up.
 * A client joins the room named by its handshake query `topic`.
 * Usage: socketio-server.ts --port P --redis URL   (prints {"ready":true,"port":P})
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';

const { values } = parseArgs({ options: { port: { type: 'string' }, redis: { type: 'string' } } });
const pub = new Redis(values.redis!);
const sub = pub.duplicate();
const server = http.createServer((req, res) => {
  if (req.url === '/bench-stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss }));
  }
});
const io = new Server(server, { adapter: createAdapter(pub, sub), serveClient: false, transports: ['polling', 'websocket'] });
io.on('connection', (socket) => {
  const topic = socket.handshake.query.topic;
  if (typeof topic === 'string') void socket.join(topic);
});
server.listen(Number(values.port), '127.0.0.1', () => process.stdout.write(JSON.stringify({ ready: true, port: Number(values.port) }) + '\n'));
process.on('SIGTERM', () => process.exit(0));
