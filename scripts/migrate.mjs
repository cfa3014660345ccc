// `npm run db:migrate`: applies drizzle/ to the Postgres named by DATABASE_URL (e.g. Neon) before
// `wrangler deploy`. The dev and test stacks apply the same files automatically.
import { MIGRATIONS } from './lib/stack.mjs';
import { applyMigrations } from './lib/local-postgres.mjs';

if (!process.env.DATABASE_URL) {
  console.error('DATABASE_URL is required');
  process.exit(2);
}
await applyMigrations(process.env.DATABASE_URL, MIGRATIONS);
console.log('migrations applied');
