// WebSocket -> TCP relay: what Neon's wsproxy does in front of a real Neon endpoint. The Neon
// serverless driver inside workerd speaks the Postgres wire protocol over this WebSocket.
// The same port also serves Neon's SQL-over-HTTP protocol (POST /sql), what Neon's proxy
// answers at https://api.<endpoint host>/sql, from a `pg` pool per connection string.
import http from 'node:http';
import net from 'node:net';
import { createRequire } from 'node:module';

// require(), not import: under Vite (the vitest global setup) `ws` would resolve to its browser stub.
const require = createRequire(import.meta.url);
const { WebSocketServer } = require('ws');
const pg = require('pg');

/**
 * Relays only to `target` (host:port) so the dev relay is not an open proxy. `stats.queries`
 * counts the extended/simple-protocol query messages clients send (Parse or Query) plus one per
 * SQL-over-HTTP request (a single query or a whole batch: one round trip either way), which is how
 * the bench measures DB round trips per request. `stats.httpRequests` counts the latter alone.
 */
export async function startWsRelay({ port, target }) {
  const stats = { connections: 0, queries: 0, httpRequests: 0 };
  const sqlOverHttp = createSqlOverHttp({ target, stats });
  const server = http.createServer((req, res) => {
    sqlOverHttp.handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err?.message ?? err));
    });
  });
  const wss = new WebSocketServer({ server });
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
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port,
    stats,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => wss.close(() => resolve()));
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
      await sqlOverHttp.close();
    },
  };
}

// ---- Neon SQL-over-HTTP ------------------------------------------------------------------------
// The protocol, as @neondatabase/serverless 1.x speaks it (see its `neon()`):
//   POST <fetchEndpoint>, JSON body {query, params} or, for sql.transaction([...]), {queries: [...]}.
//   Headers: Neon-Connection-String (which database, also how Neon routes), Neon-Raw-Text-Output
//   (values as Postgres text, the driver parses them), Neon-Array-Mode (rows as arrays), and for
//   batches Neon-Batch-Isolation-Level / -Read-Only / -Deferrable (one transaction for the batch).
//   200: {command, rowCount, fields: [{name, dataTypeID, ...}], rows, rowAsArray}; a batch
//   answers {results: [...]}. 400: {message, code, constraint, detail, ...} (a Postgres error;
//   the driver copies these fields onto its NeonDbError).

const ERROR_FIELDS = ['severity', 'code', 'detail', 'hint', 'position', 'internalPosition', 'internalQuery', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'file', 'line', 'routine'];
const ISOLATION = { ReadUncommitted: 'READ UNCOMMITTED', ReadCommitted: 'READ COMMITTED', RepeatableRead: 'REPEATABLE READ', Serializable: 'SERIALIZABLE' };
// Values go back as Postgres sent them (text); the driver applies its own type parsers.
const RAW_TEXT = { getTypeParser: () => (value) => value };

function createSqlOverHttp({ target, stats }) {
  const pools = new Map();

  function poolFor(connectionString) {
    let url;
    try {
      url = new URL(connectionString);
    } catch {
      return undefined;
    }
    // Like the WebSocket side: only the one Postgres this relay stands in front of.
    if (`${url.hostname}:${url.port || 5432}` !== target) return undefined;
    url.searchParams.delete('application_name');
    const key = url.toString();
    let pool = pools.get(key);
    if (!pool) {
      pool = new pg.Pool({ connectionString: key, max: 20, idleTimeoutMillis: 30_000, application_name: 'neon-http-relay' });
      pool.on('error', () => {}); // an idle client dropping is not the caller's problem
      pools.set(key, pool);
    }
    return pool;
  }

  async function run(client, { query, params }, arrayMode) {
    let result = await client.query({ text: query, values: params ?? [], rowMode: 'array', types: RAW_TEXT });
    if (Array.isArray(result)) result = result[result.length - 1]; // several statements, no params
    const fields = result.fields.map((f) => ({
      name: f.name,
      tableID: f.tableID,
      columnID: f.columnID,
      dataTypeID: f.dataTypeID,
      dataTypeSize: f.dataTypeSize,
      dataTypeModifier: f.dataTypeModifier,
      format: 'text',
    }));
    const rows = arrayMode ? result.rows : result.rows.map((row) => Object.fromEntries(fields.map((f, i) => [f.name, row[i]])));
    return { command: result.command, rowCount: result.rowCount, fields, rows, rowAsArray: arrayMode };
  }

  async function handle(req, res) {
    const path = new URL(req.url ?? '/', 'http://relay').pathname;
    if (req.method !== 'POST' || path !== '/sql') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const pool = poolFor(String(req.headers['neon-connection-string'] ?? ''));
    if (!pool) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'connection string not served by this relay' }));
      return;
    }
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'malformed request body' }));
      return;
    }
    const arrayMode = String(req.headers['neon-array-mode']) === 'true';
    stats.httpRequests += 1;
    stats.queries += 1; // one HTTP request = one round trip, batch or not

    let answer;
    try {
      if (Array.isArray(body.queries)) {
        const client = await pool.connect();
        let broken = false;
        try {
          const level = ISOLATION[String(req.headers['neon-batch-isolation-level'] ?? '')];
          const modes = [
            level ? `ISOLATION LEVEL ${level}` : '',
            req.headers['neon-batch-read-only'] === 'true' ? 'READ ONLY' : '',
            req.headers['neon-batch-deferrable'] === 'true' ? 'DEFERRABLE' : '',
          ].filter(Boolean);
          await client.query(`BEGIN ${modes.join(' ')}`);
          try {
            const results = [];
            for (const q of body.queries) results.push(await run(client, q, arrayMode));
            await client.query('COMMIT');
            answer = { results };
          } catch (err) {
            await client.query('ROLLBACK').catch(() => {
              broken = true;
            });
            throw err;
          }
        } finally {
          client.release(broken);
        }
      } else {
        answer = await run(pool, body, arrayMode);
      }
    } catch (err) {
      if (err && typeof err === 'object' && typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code)) {
        const out = { message: err.message };
        for (const field of ERROR_FIELDS) if (err[field] !== undefined) out[field] = err[field];
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify(out));
        return;
      }
      throw err;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  return {
    handle,
    close: () => Promise.all([...pools.values()].map((p) => p.end().catch(() => {}))),
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
