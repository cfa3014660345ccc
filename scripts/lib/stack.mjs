// The local stack every entry point shares: embedded Postgres with migrations applied, and the
// WebSocket relay the Neon driver uses to reach it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyMigrations, freePort, startLocalPostgres } from './local-postgres.mjs';
import { startWsRelay } from './ws-relay.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MIGRATIONS = path.join(ROOT, 'drizzle');

/**
 * `DATABASE_URL` set → use that Postgres (only the relay is started when it is on loopback-less
 * Neon, nothing is needed). Unset → embedded cluster in `dataDir`.
 */
export async function startStack({ dataDir, database, pgPort, fresh = false, log = () => {} }) {
  const stops = [];
  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    const pg = await startLocalPostgres({ dataDir, port: pgPort ?? (await freePort()), log });
    stops.push(() => pg.stop());
    if (fresh) await pg.dropDatabase(database);
    await pg.ensureDatabase(database);
    if (fresh) stops.unshift(() => pg.dropDatabase(database).catch(() => {}));
    databaseUrl = pg.urlFor(database);
  }
  await applyMigrations(databaseUrl, MIGRATIONS);
  const db = new URL(databaseUrl);
  const relay = await startWsRelay({ port: await freePort(), target: `${db.hostname}:${db.port || 5432}` });
  stops.unshift(() => relay.close());
  return {
    databaseUrl,
    wsProxy: `127.0.0.1:${relay.port}/v1`,
    relay,
    async stop() {
      for (const stop of stops) await stop();
    },
  };
}
