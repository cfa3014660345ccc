import { Pool, neonConfig } from '@neondatabase/serverless';
import { drizzle, type NeonDatabase } from 'drizzle-orm/neon-serverless';
import * as schema from '../db/schema';
import type { Bindings } from '../env';

export type Db = NeonDatabase<typeof schema>;

/**
 * Per-request resources: a lazily opened Pool (one per request, as Workers require) and the
 * background work that must finish after the response. `close()` runs in waitUntil and ends
 * the pool only after that work is done.
 */
export class RequestScope {
  private pool: Pool | undefined;
  private database: Db | undefined;
  private readonly tasks: Promise<unknown>[] = [];
  private closing = false;

  constructor(readonly env: Bindings) {}

  get db(): Db {
    if (!this.database) {
      configureNeon(this.env);
      this.pool = new Pool({ connectionString: this.env.DATABASE_URL });
      // An idle client error (peer closed) must not become an unhandled rejection.
      // An idle client dropping while we end the pool is expected; anything earlier is worth a line.
      this.pool.on('error', (err: unknown) => {
        if (!this.closing) console.warn('idle pool connection error:', err instanceof Error ? err.message : 'connection closed');
      });
      this.database = drizzle({ client: this.pool, schema });
    }
    return this.database;
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

function configureNeon(env: Bindings): void {
  const proxy = env.NEON_WS_PROXY;
  if (!proxy) return;
  // Plain Postgres behind a local relay: no TLS, and no pipelining (the relay is a dumb pipe
  // and Postgres without Neon's proxy does not accept pipelined startup).
  neonConfig.wsProxy = (host, port) => `${proxy}?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
}
