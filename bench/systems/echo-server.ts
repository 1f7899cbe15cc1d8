/**
 * The WebSocket echo server behind the proxies in the shim scenario. It
 * accepts an upgrade on any path (the shim only proxies `/socket.io/`, so the
 * clients use that path everywhere) and sends every message straight back.
 * It also answers `GET /load` like a Bifrost node, so the shim's node pool
 * treats it as one and routes "bifrost" sockets to it.
 * Usage: echo-server.ts --port P   (prints {"ready":true})
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  if (req.url === '/load') res.end(JSON.stringify({ node: 'echo', loadFactor: 0, draining: false }));
  else if (req.url === '/bench-stats') res.end(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss }));
  else {
    res.statusCode = 404;
    res.end('{}');
  }
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false, skipUTF8Validation: true });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => undefined);
});
server.listen(Number(values.port), '127.0.0.1', () => process.stdout.write(JSON.stringify({ ready: true, port: Number(values.port) }) + '\n'));
process.on('SIGTERM', () => process.exit(0));
