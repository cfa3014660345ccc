import { createRoute, z } from '@hono/zod-openapi';
import { json, newRouter } from '../api/openapi';
import { datastoreAnswers } from '../db/probe';

export const healthRoutes = newRouter();

const Health = z.object({ status: z.enum(['ok', 'degraded']), database: z.enum(['ok', 'unreachable']) }).openapi('Health');

healthRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/health',
    tags: ['platform'],
    summary: 'Liveness of the edge and its datastore (no driver text, ever)',
    responses: { 200: json(Health, 'Healthy'), 503: json(Health, 'Datastore unreachable') },
  }),
  async (c) => {
    if (await datastoreAnswers(c.var.scope.db, 'health')) return c.json({ status: 'ok' as const, database: 'ok' as const }, 200);
    return c.json({ status: 'degraded' as const, database: 'unreachable' as const }, 503);
  },
);
