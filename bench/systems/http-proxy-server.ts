/**
 * http-proxy-3 on its own, as its README shows it, in front of the echo
 * server: no route token, no flag, no connection tracking. In the shim
 * scenario it separates what the library costs per upgrade from what the
 * shim adds on top (its decision and bookkeeping). Error handlers are on
 * every socket, as the library choice asks.
 * Usage: http-proxy-server.ts --port P --target URL   (prints {"ready":true})
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createProxyServer } from 'http-proxy-3';

const { values } = parseArgs({ options: { port: { type: 'string' }, target: { type: 'string' } } });
const target = values.target!;
const proxy = createProxyServer({ target, ws: true });
proxy.on('error', (_err, _req, res) => {
  if (res && 'destroy' in res) res.destroy();
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => undefined);
  proxy.ws(req, socket, head);
});
server.listen(Number(values.port), '127.0.0.1', () => process.stdout.write(JSON.stringify({ ready: true, port: Number(values.port) }) + '\n'));
process.on('SIGTERM', () => process.exit(0));
