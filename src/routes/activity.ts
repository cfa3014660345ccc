import { createRoute, z } from '@hono/zod-openapi';
import { and, asc, desc, eq, gt, gte, isNotNull, isNull, sql, type SQL } from 'drizzle-orm';
import { recordActivities } from '../activity/record';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { ActivityRow, clampedPositiveInt, Uuid, WorkspaceIdParam } from '../api/schemas';
import { authorizeWorkspace } from '../auth/guards';
import { ACTIVITY_TYPES, activityLogs } from '../db/schema';
import { storedJson } from '../db/stored-json';
import { ApiError } from '../errors';
import { MiB } from '../lib/body';

export const activityRoutes = newRouter();

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 500;
export const MAX_SINCE_SECS = 2_592_000; // 30 days: bounds the scan a client can ask for.

const ActivityQuery = z.object({
  type: z.enum(ACTIVITY_TYPES).optional(),
  source: z.enum(['canvas', 'agent'], { message: "source must be 'canvas' or 'agent'" }).optional(),
  limit: clampedPositiveInt('limit', MAX_LIMIT).optional(),
  // A typo here must not silently become "the last 100 rows": reject, never ignore.
  since_secs: clampedPositiveInt('since_secs', MAX_SINCE_SECS).optional(),
  since_id: z.guid({ message: 'since_id must be an activity id' }).optional().openapi({ format: 'uuid' }),
});

activityRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/activity',
    tags: ['activity'],
    summary: 'The activity feed: newest first, or oldest first after a since_id cursor',
    security: bearerSecurity,
    request: { params: WorkspaceIdParam, query: ActivityQuery },
    responses: {
      200: json(z.array(ActivityRow), 'Rows'),
      ...errors(400, 401, 404),
      410: json(z.object({ error: z.string() }), 'Cursor not found (pruned, unknown or another feed): resync without since_id'),
    },
  }),
  async (c) => {
    const { id: workspaceId } = c.req.valid('param');
    const q = c.req.valid('query');
    await authorizeWorkspace(c, workspaceId);
    const db = c.var.scope.db;

    const filters: SQL[] = [eq(activityLogs.workspaceId, workspaceId)];
    if (q.type) filters.push(eq(activityLogs.activityType, q.type));
    if (q.source === 'canvas') filters.push(isNull(activityLogs.sourceId));
    if (q.source === 'agent') filters.push(isNotNull(activityLogs.sourceId));
    if (q.since_secs) filters.push(gte(activityLogs.createdAt, sql`now() - make_interval(secs => ${q.since_secs})`));
    if (q.since_id) {
      // Scoped to this workspace: another workspace's id, a pruned id and an unknown id all look
      // the same, so a cursor cannot be used to probe other feeds.
      const [cursor] = await db
        .select({ seq: activityLogs.seq })
        .from(activityLogs)
        .where(and(eq(activityLogs.id, q.since_id), eq(activityLogs.workspaceId, workspaceId)));
      if (!cursor) throw new ApiError(410, 'cursor not found: resync from the recent feed (omit since_id)');
      filters.push(gt(activityLogs.seq, cursor.seq));
    }

    const rows = await db
      .select({
        id: activityLogs.id,
        workspace_id: activityLogs.workspaceId,
        activity_type: activityLogs.activityType,
        source_id: activityLogs.sourceId,
        target_id: activityLogs.targetId,
        method: activityLogs.method,
        summary: activityLogs.summary,
        request_body: storedJson(activityLogs.requestBody),
        response_body: storedJson(activityLogs.responseBody),
        tool_trace: storedJson(activityLogs.toolTrace),
        status: activityLogs.status,
        error_detail: activityLogs.errorDetail,
        duration_ms: activityLogs.durationMs,
        created_at: activityLogs.createdAt,
      })
      .from(activityLogs)
      .where(and(...filters))
      // A cursor consumer needs recorded order; the recent feed wants newest first.
      .orderBy(q.since_id ? asc(activityLogs.seq) : desc(activityLogs.seq))
      .limit(q.limit ?? DEFAULT_LIMIT);

    return c.json(rows.map(dropNullBodies) as never, 200);
  },
);

const ReportActivity = z
  .object({
    activity_type: z.enum(ACTIVITY_TYPES),
    method: z.string().max(200).optional(),
    summary: z.string().max(1000).optional(),
    source_id: Uuid.or(z.literal('')).optional(),
    target_id: Uuid.optional(),
    status: z.enum(['ok', 'error']).optional(),
    error_detail: z.string().max(4096).optional(),
    duration_ms: z.number().int().min(0).max(86_400_000).optional(),
    request_body: z.unknown().optional(),
    response_body: z.unknown().optional(),
    metadata: z.unknown().optional(),
    tool_trace: z.unknown().optional(),
  })
  .openapi('ReportActivity');

activityRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/activity',
    tags: ['activity'],
    summary: "An agent's own report into its feed",
    security: bearerSecurity,
    middleware: [readJsonBody(MiB)] as const,
    request: { params: WorkspaceIdParam, body: jsonBody(ReportActivity) },
    responses: { 200: json(z.object({ status: z.literal('logged'), id: z.string() }), 'Recorded'), ...errors(400, 401, 403, 404, 413) },
  }),
  async (c) => {
    const { id: workspaceId } = c.req.valid('param');
    const input = c.req.valid('json');
    await authorizeWorkspace(c, workspaceId);
    if (input.source_id && input.source_id !== workspaceId) throw new ApiError(403, 'source_id must match authenticated workspace');
    const [id] = await recordActivities(c.var.scope, [
      {
        workspaceId,
        activityType: input.activity_type,
        sourceId: workspaceId,
        targetId: input.target_id ?? null,
        method: input.method ?? null,
        summary: input.summary ?? null,
        requestBody: input.request_body ?? input.metadata ?? null,
        responseBody: input.response_body ?? null,
        toolTrace: input.tool_trace ?? null,
        status: input.status ?? 'ok',
        errorDetail: input.error_detail ?? null,
        durationMs: input.duration_ms ?? null,
      },
    ]);
    return c.json({ status: 'logged' as const, id: id! }, 200);
  },
);

function dropNullBodies<T extends { request_body: unknown; response_body: unknown; tool_trace: unknown }>(row: T) {
  const { request_body, response_body, tool_trace, ...rest } = row;
  return {
    ...rest,
    ...(request_body != null ? { request_body } : {}),
    ...(response_body != null ? { response_body } : {}),
    ...(tool_trace != null ? { tool_trace } : {}),
  };
}
