import { createRoute, z } from '@hono/zod-openapi';
import { feedRowView } from '../activity/feed-view';
import { readFeed } from '../activity/queries';
import { recordActivities } from '../activity/record';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { ActivityRow, clampedPositiveInt, Uuid, WorkspaceIdParam } from '../api/schemas';
import { authorizeWorkspace } from '../auth/guards';
import { ACTIVITY_TYPES } from '../db/schema';
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
  // A typo here must not silently become "the last 100 rows": reject, never ignore. 0 means
  // "only the newest row" (a poller that wants no backlog still needs a cursor to start from).
  since_secs: z
    .string()
    .regex(/^(0|[1-9][0-9]{0,15})$/, 'since_secs must be a non-negative integer')
    .transform((v) => Math.min(Number(v), MAX_SINCE_SECS))
    .optional()
    .openapi({ type: 'integer', minimum: 0, maximum: MAX_SINCE_SECS }),
  since_id: z.guid({ message: 'since_id must be an activity id' }).optional().openapi({ format: 'uuid' }),
  peer_id: z.guid({ message: 'peer_id must be a workspace id' }).optional().openapi({ format: 'uuid', description: 'Only rows exchanged with this workspace' }),
  before_ts: z.iso
    .datetime({ offset: true, message: 'before_ts must be an RFC 3339 timestamp' })
    .transform((v) => new Date(v))
    // RFC 3339 allows years and offsets Postgres cannot represent (year 0, 9999-12-31 at -23:59).
    .refine((d) => d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999, 'before_ts must be between the years 1 and 9999')
    .optional()
    .openapi({ type: 'string', format: 'date-time', description: 'Only rows older than this' }),
  order: z.enum(['asc', 'desc']).optional().openapi({ description: 'Without since_id: the newest rows newest first (desc) or in recorded order (asc); see the feed-ordering rule' }),
});

activityRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/activity',
    tags: ['activity'],
    summary: 'The activity feed: after a since_id cursor oldest first, else the newest rows (order: see README, "the feed-ordering rule")',
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
    const credential = await authorizeWorkspace(c, workspaceId);
    // The agent's own poller reading its inbox (as opposed to the canvas or an operator).
    const ownInbox = credential.kind === 'workspace' && q.type === 'a2a_receive';
    const page = await readFeed(c.var.scope.db, {
      workspaceId,
      type: q.type,
      source: q.source,
      peerId: q.peer_id,
      beforeTs: q.before_ts,
      sinceSecs: q.since_secs,
      sinceId: q.since_id,
      limit: q.since_secs === 0 ? 1 : (q.limit ?? DEFAULT_LIMIT),
      order: q.order ?? (ownInbox && q.limit !== undefined && !q.before_ts ? 'asc' : 'desc'),
      hideNotifyEchoes: ownInbox,
    });
    if (!page.cursorFound) throw new ApiError(410, 'cursor not found: resync from the recent feed (omit since_id)');
    return c.json(page.rows.map(feedRowView) as never, 200);
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
