import { sql } from 'drizzle-orm';
import { Hono } from 'hono';
import type { AppEnv } from '../env';

export const healthRoutes = new Hono<AppEnv>();

healthRoutes.get('/', async (c) => {
  try {
    await c.var.scope.db.execute(sql`SELECT 1`);
    return c.json({ status: 'ok', database: 'ok' });
  } catch (err) {
    console.error('health: database unreachable', err);
    return c.json({ status: 'degraded', database: 'unreachable' }, 503);
  }
});
