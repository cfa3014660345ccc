import { createRoute, z } from '@hono/zod-openapi';
import { bearerSecurity, errors, json, newRouter } from '../api/openapi';
import { clampedPositiveInt, WorkspaceIdParam } from '../api/schemas';
import { authorizeWorkspace } from '../auth/guards';
import { datastoreUnavailable } from '../errors';
import { readUsage } from '../usage/token-usage';

export const usageRoutes = newRouter();

const MAX_DAYS = 366;
const DEFAULT_DAYS = 30;

const UsagePeriod = z
  .object({
    period_start: z.string().openapi({ format: 'date', description: 'The UTC day' }),
    input_tokens: z.number().int(),
    output_tokens: z.number().int(),
    call_count: z.number().int(),
    updated_at: z.string().openapi({ format: 'date-time' }),
  })
  .openapi('UsagePeriod');

const Usage = z
  .object({
    workspace_id: z.string(),
    periods: z.array(UsagePeriod).openapi({ description: 'Newest first; days without reported usage are absent' }),
    totals: z.object({ input_tokens: z.number().int(), output_tokens: z.number().int(), call_count: z.number().int() }),
  })
  .openapi('WorkspaceUsage');

usageRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/usage',
    tags: ['workspaces'],
    summary: "Tokens the workspace's agent reported in its A2A answers, per UTC day",
    security: bearerSecurity,
    request: {
      params: WorkspaceIdParam,
      query: z.object({
        days: clampedPositiveInt('days', MAX_DAYS).optional().openapi({ description: `Periods from the last N days (default ${DEFAULT_DAYS})` }),
        limit: clampedPositiveInt('limit', MAX_DAYS).optional().openapi({ description: `At most this many periods (default ${MAX_DAYS})` }),
      }),
    },
    responses: { 200: json(Usage, 'Usage, newest period first'), ...errors(400, 401, 404, 503) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const q = c.req.valid('query');
    await authorizeWorkspace(c, id);
    let periods;
    try {
      periods = await readUsage(c.var.scope.db, id, { days: q.days ?? DEFAULT_DAYS, limit: q.limit ?? MAX_DAYS });
    } catch (err) {
      throw datastoreUnavailable(err);
    }
    const totals = { input_tokens: 0, output_tokens: 0, call_count: 0 };
    for (const p of periods) {
      totals.input_tokens += p.input_tokens;
      totals.output_tokens += p.output_tokens;
      totals.call_count += p.call_count;
    }
    return c.json({ workspace_id: id, periods: periods.map((p) => ({ ...p, updated_at: new Date(p.updated_at).toISOString() })), totals }, 200);
  },
);
