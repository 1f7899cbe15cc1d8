/**
 * A plain socket.io 4 server standing in for a backend behind the shim
 * (polling + websocket, EIO 3 allowed): it answers virtual GETs with its name,
 * records each connection's handshake query, and serves /load like a Bifrost
 * node.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server as SocketIoServer } from 'socket.io';

export interface SocketIoBackend {
  name: string;
  url: string;
  handshakeQueries: Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startSocketIoBackend(name: string): Promise<SocketIoBackend> {
  const server = http.createServer((req, res) => {
    if (req.url === '/load') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ node: name, loadFactor: 0.1, draining: false }));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const io = new SocketIoServer(server, { allowEIO3: true, transports: ['polling', 'websocket'] });
  const handshakeQueries: Record<string, unknown>[] = [];
  io.on('connection', (socket) => {
    handshakeQueries.push({ ...socket.handshake.query });
    socket.on('get', (_req: unknown, ack: (res: unknown) => void) => ack({ statusCode: 200, body: { name }, headers: {} }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { name, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, handshakeQueries, close: () => new Promise<void>((r) => io.close(() => r())) };
}
