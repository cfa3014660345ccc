// WebSocket -> TCP relay: what Neon's wsproxy does in front of a real Neon endpoint. The Neon
// serverless driver inside workerd speaks the Postgres wire protocol over this WebSocket.
import net from 'node:net';
import { createRequire } from 'node:module';

// require(), not import: under Vite (the vitest global setup) `ws` would resolve to its browser stub.
const { WebSocketServer } = createRequire(import.meta.url)('ws');

/**
 * Relays only to `target` (host:port) so the dev relay is not an open proxy. `stats.queries`
 * counts the extended/simple-protocol query messages clients send (Parse or Query), which is
 * how the bench measures DB round trips per request.
 */
export async function startWsRelay({ port, target }) {
  const stats = { connections: 0, queries: 0 };
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  wss.on('connection', (ws, req) => {
    const address = new URL(req.url ?? '/', 'http://relay').searchParams.get('address');
    if (address !== target) {
      ws.close(1008, 'address not allowed');
      return;
    }
    stats.connections += 1;
    const [host, tcpPort] = target.split(':');
    const socket = net.connect(Number(tcpPort), host);
    const pending = [];
    let connected = false;
    socket.on('connect', () => {
      connected = true;
      for (const chunk of pending) socket.write(chunk);
      pending.length = 0;
    });
    socket.on('data', (data) => ws.readyState === ws.OPEN && ws.send(data));
    socket.on('close', () => ws.close());
    socket.on('error', () => ws.close());
    ws.on('message', (data) => {
      const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data);
      stats.queries += countQueryMessages(chunk);
      if (connected) socket.write(chunk);
      else pending.push(chunk);
    });
    ws.on('close', () => socket.end());
    ws.on('error', () => socket.destroy());
  });
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  return {
    port,
    stats,
    close: () => new Promise((resolve) => {
      for (const client of wss.clients) client.terminate();
      wss.close(() => resolve());
    }),
  };
}

// Frontend messages are [type:1][len:4][body]; a round trip starts with 'P' (Parse) or 'Q' (Query).
// The startup packet has no type byte but is always the first frame of a connection, and is
// never 'P'/'Q'-led with a consistent length, so scanning frames is good enough for counting.
function countQueryMessages(buf) {
  let n = 0;
  let i = 0;
  while (i + 5 <= buf.length) {
    const type = buf[i];
    const len = buf.readUInt32BE(i + 1);
    if (len < 4) break;
    if (type === 0x50 || type === 0x51) n += 1;
    i += 1 + len;
  }
  return n;
}
