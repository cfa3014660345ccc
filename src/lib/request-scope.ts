import { Pool, neon, neonConfig, types, type NeonQueryFunction } from '@neondatabase/serverless';
import { drizzle, type NeonDatabase } from 'drizzle-orm/neon-serverless';
import { drizzle as drizzleHttp, type NeonHttpDatabase } from 'drizzle-orm/neon-http';
import * as schema from '../db/schema';
import type { Bindings } from '../env';

export type Db = NeonDatabase<typeof schema>;
type HttpDb = NeonHttpDatabase<typeof schema>;
/** A parameterised statement written by hand ($1, $2, … in `text`). */
export type Statement = { text: string; params: unknown[] };

/**
 * Per-request resources: the database handle and the background work that must finish after the
 * response. `close()` runs in waitUntil and ends the pool (if one was opened) only after that
 * work is done.
 *
 * `db` sends every single statement over Neon's SQL-over-HTTP path (one HTTP round trip, no
 * Postgres session of our own; Neon pools server-side). Only `db.transaction(...)` needs an
 * interactive session: it is routed to a Pool-backed drizzle that is opened lazily, on the first
 * transaction of the request, so a request that runs no transaction never opens a session. The
 * split lives here and nowhere else; call sites use `scope.db` for both.
 */
export class RequestScope {
  private pool: Pool | undefined;
  private poolDatabase: Db | undefined;
  private database: Db | undefined;
  private readonly tasks: Promise<unknown>[] = [];
  private closing = false;

  constructor(readonly env: Bindings) {}

  get db(): Db {
    if (!this.database) {
      configureNeon(this.env);
      const http = httpDb(this.env.DATABASE_URL);
      this.database = new Proxy(http, {
        get: (target, prop) => {
          if (prop === 'transaction') {
            const viaPool = this.sessionDb();
            return viaPool.transaction.bind(viaPool);
          }
          const value = Reflect.get(target, prop, target) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      }) as unknown as Db;
    }
    return this.database;
  }

  /**
   * Hand-written statements as one transaction in one HTTP round trip; the rows of each. Only for
   * the write-behind flush: drizzle's query builder cost a tenth of the Worker's CPU there in the
   * bench (per-column Param objects and `is()` checks for every row), more than the round trip.
   */
  async batchStatements(statements: Statement[]): Promise<Record<string, unknown>[][]> {
    configureNeon(this.env);
    const { sql } = httpClient(this.env.DATABASE_URL);
    return (await sql.transaction(statements.map((s) => sql.query(s.text, s.params, { types: pinnedTypes })))) as Record<string, unknown>[][];
  }

  /** The Pool-backed drizzle: one Neon session per request, opened on first use (transactions only). */
  private sessionDb(): Db {
    if (!this.poolDatabase) {
      configureNeon(this.env);
      this.pool = new Pool({ connectionString: this.env.DATABASE_URL });
      // An idle client error (peer closed) must not become an unhandled rejection.
      // An idle client dropping while we end the pool is expected; anything earlier is worth a line.
      this.pool.on('error', (err: unknown) => {
        if (!this.closing) console.warn('idle pool connection error:', err instanceof Error ? err.message : 'connection closed');
      });
      this.poolDatabase = drizzle({ client: this.pool, schema });
    }
    return this.poolDatabase;
  }

  /** Runs `work` off the response path; failures are logged, never surfaced. */
  defer(label: string, work: () => Promise<unknown>): void {
    this.tasks.push(
      Promise.resolve()
        .then(work)
        .catch((err) => console.error(`background task failed: ${label}`, err)),
    );
  }

  async close(): Promise<void> {
    // Deferred work may defer more work; drain until quiet.
    for (let seen = 0; seen < this.tasks.length; ) {
      const batch = this.tasks.slice(seen);
      seen = this.tasks.length;
      await Promise.allSettled(batch);
    }
    this.closing = true;
    await this.pool?.end().catch((err) => console.error('pool end failed', err));
  }
}

/**
 * Type parsing, pinned. drizzle's Pool path (neon-serverless) passes per-query parsers that leave
 * timestamp/date/interval types (and their arrays) as text, for its column mappers to convert;
 * everything else goes through the package's global parsers (int8 as string, json parsed...).
 * drizzle's neon-http driver instead rewrites those global parsers when constructed, which would
 * change what every other Pool user of the package sees (e.g. timestamps as strings from a plain
 * `pool.query`). So: the HTTP client gets the very same per-query parsers as the Pool path, and
 * the globals are restored right after drizzle-http is constructed.
 */
const TEXT_OIDS = new Set<number>([
  1184, // timestamptz
  1114, // timestamp
  1082, // date
  1186, // interval
  1231, // numeric[] (as drizzle-orm)
  1115, // timestamp[]
  1185, // timestamptz[]
  1187, // interval[]
  1182, // date[]
]);
const identity = (value: string) => value;
const pinnedTypes = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') =>
    TEXT_OIDS.has(oid) ? identity : (types.getTypeParser(oid, format) as (value: string) => unknown),
};

const httpClients = new Map<string, { db: HttpDb; sql: NeonQueryFunction<false, false> }>();

/** One stateless HTTP client per connection string per isolate (it holds no I/O objects). */
function httpDb(connectionString: string): HttpDb {
  return httpClient(connectionString).db;
}

function httpClient(connectionString: string): { db: HttpDb; sql: NeonQueryFunction<false, false> } {
  let entry = httpClients.get(connectionString);
  if (!entry) {
    const sql = neon(connectionString);
    const client = Object.assign((...args: Parameters<typeof sql>) => sql(...args), {
      query: (text: string, params?: unknown[], opts?: Record<string, unknown>) => sql.query(text, params as never, { ...opts, types: pinnedTypes } as never),
      transaction: sql.transaction,
    }) as unknown as NeonQueryFunction<false, false>;
    const saved = [...TEXT_OIDS].map((oid) => [oid, types.getTypeParser(oid, 'text')] as const);
    try {
      entry = { db: drizzleHttp({ client, schema }), sql };
    } finally {
      for (const [oid, parser] of saved) types.setTypeParser(oid, parser);
    }
    httpClients.set(connectionString, entry);
  }
  return entry;
}

function configureNeon(env: Bindings): void {
  const proxy = env.NEON_WS_PROXY;
  if (!proxy) return;
  // Plain Postgres behind a local relay: no TLS, and no pipelining (the relay is a dumb pipe
  // and Postgres without Neon's proxy does not accept pipelined startup).
  neonConfig.wsProxy = (host, port) => `${proxy}?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
  // The same relay serves Neon's SQL-over-HTTP protocol at /sql (production: Neon's default
  // https://api.<host>/sql). It routes by the Neon-Connection-String header, as Neon does.
  neonConfig.fetchEndpoint = `http://${proxy.split('/')[0]}/sql`;
}
