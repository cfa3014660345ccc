import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { parseCallerHeader } from '../a2a/caller';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { Timestamp, Uuid, WorkspaceIdParam } from '../api/schemas';
import { authorizeWorkspace } from '../auth/guards';
import { DELEGATION_STATUSES } from '../db/schema';
import { announceSettled, bounded, PREVIEW_MAX_CHARS, scheduleDelegation } from '../delegations/dispatch';
import {
  createDelegation,
  findDelegation,
  listDelegations,
  recordDelegation,
  settleDelegation,
  type DelegationRow,
} from '../delegations/queries';
import type { AppEnv } from '../env';
import { ApiError } from '../errors';
import { KiB } from '../lib/body';
import { isUuid } from '../lib/ids';
import { mayCommunicate, workspaceIsLive } from '../workspaces/queries';

export const delegationRoutes = newRouter();

const MAX_BODY_BYTES = 256 * KiB;
/** Room for a task with pasted context; it is stored once and copied into the message and both feeds. */
const MAX_TASK_CHARS = 64 * KiB;
const MAX_TEXT_INPUT_CHARS = 64 * KiB;
const MAX_LIST = 50;

const Task = z
  .string()
  .max(MAX_TASK_CHARS)
  .refine((t) => t.trim().length > 0, 'task must not be empty')
  .openapi({ minLength: 1, maxLength: MAX_TASK_CHARS });

/** Empty means "none" (best-effort clients send `""` rather than leave a key out); longer texts are cut, not refused. */
const OptionalText = z
  .string()
  .max(MAX_TEXT_INPUT_CHARS)
  .transform((t) => (t === '' ? null : bounded(t)))
  .optional()
  .openapi({ type: 'string', description: `Kept up to ${PREVIEW_MAX_CHARS} characters; empty means none` });

const Delegate = z
  .object({
    target_id: Uuid.optional().openapi({ description: 'Required, except in the SDK form: no target_id, `X-Workspace-ID: <source>` and the target in the path' }),
    task: Task,
    idempotency_key: z
      .string()
      .max(128)
      .regex(/^[\x20-\x7E]*$/, 'idempotency_key must be printable ASCII')
      .optional()
      .openapi({ description: 'A retry with the same key to the same target, while that delegation has not failed, is the same delegation' }),
  })
  .openapi('DelegateRequest');

const DelegateHeaders = z.object({
  'x-workspace-id': z.string().max(128).optional().openapi({ description: 'The delegating workspace (SDK form); must agree with the bearer' }),
});

const Delegated = z
  .object({
    delegation_id: z.string(),
    status: z.enum(DELEGATION_STATUSES),
    target_id: z.string(),
    idempotent_hit: z.literal(true).optional(),
  })
  .openapi('Delegated');

const Delegation = z
  .object({
    delegation_id: z.string(),
    type: z.literal('delegation'),
    source_id: z.string(),
    target_id: z.string(),
    summary: z.string().openapi({ description: 'The task, first 200 characters' }),
    status: z.enum(DELEGATION_STATUSES),
    response_preview: z.string().nullable(),
    error: z.string().nullable(),
    error_detail: z.string().nullable().openapi({ description: 'The same as `error` (read by the runtime)' }),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .openapi('Delegation');

const DelegationParams = WorkspaceIdParam.extend({
  delegationId: z
    .guid({ message: 'invalid delegation ID' })
    .transform((v) => v.toLowerCase())
    .openapi({ param: { name: 'delegationId', in: 'path' }, type: 'string', format: 'uuid' }),
});

delegationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/delegate',
    tags: ['delegations'],
    summary: 'Hand a task to another workspace; it is sent in the background (always 202, also for an idempotent retry)',
    description:
      'The path names the delegating workspace. SDK form: without `target_id`, with `X-Workspace-ID` naming another workspace, the path is the target and the header the source (whose bearer is required).',
    security: bearerSecurity,
    middleware: [readJsonBody(MAX_BODY_BYTES)] as const,
    request: { params: WorkspaceIdParam, headers: DelegateHeaders, body: jsonBody(Delegate) },
    responses: { 202: json(Delegated, 'Accepted (or the existing delegation with this idempotency key)'), ...errors(400, 401, 403, 404, 413, 503) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const input = c.req.valid('json');
    const { sourceId, targetId } = parties(id, input.target_id, parseCallerHeader(c.req.valid('header')['x-workspace-id']));
    await authorizeWorkspace(c, sourceId);
    await assertMayDelegate(c, sourceId, targetId);

    const db = c.var.scope.db;
    const { row, created } = await createDelegation(db, { sourceId, targetId, task: input.task, idempotencyKey: input.idempotency_key || null });
    if (created) {
      try {
        await scheduleDelegation(c.env, row.delegation_id);
      } catch (err) {
        // Not scheduled means never sent: fail it, which also frees its idempotency key for the retry.
        console.error('delegation not scheduled', row.delegation_id, err);
        await settleDelegation(db, row.delegation_id, { status: 'failed', error: 'delegation could not be scheduled' }).catch((e) =>
          console.error('unscheduled delegation not failed', row.delegation_id, e),
        );
        throw new ApiError(503, 'delegation could not be scheduled — retry shortly');
      }
    }
    return c.json(
      { delegation_id: row.delegation_id, status: row.status, target_id: row.target_id, ...(created ? {} : { idempotent_hit: true as const }) },
      202,
    );
  },
);

/**
 * Who delegates to whom. The path is the source, unless the body names no target and
 * X-Workspace-ID names another workspace (the SDK posts to the target's path).
 */
function parties(pathId: string, bodyTarget: string | undefined, headerCaller: string | null): { sourceId: string; targetId: string } {
  let sourceId = pathId;
  let targetId = bodyTarget;
  if (bodyTarget) {
    if (headerCaller && headerCaller !== pathId) throw new ApiError(400, 'X-Workspace-ID must name the delegating workspace (the path)');
  } else if (headerCaller && headerCaller !== pathId) {
    sourceId = headerCaller;
    targetId = pathId;
  }
  if (!targetId) throw new ApiError(400, 'target_id is required');
  if (targetId === sourceId) throw new ApiError(400, 'self-delegation not permitted');
  return { sourceId, targetId };
}

/** The target must be live and reachable under the A2A hierarchy rule, as for the proxy. */
async function assertMayDelegate(c: Context<AppEnv>, sourceId: string, targetId: string): Promise<void> {
  const db = c.var.scope.db;
  if (!(await workspaceIsLive(db, targetId))) throw new ApiError(404, 'target workspace not found');
  if (!(await mayCommunicate(db, sourceId, targetId))) throw new ApiError(403, 'access denied: workspaces cannot communicate per hierarchy rules');
}

delegationRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/delegations',
    tags: ['delegations'],
    summary: 'Delegations this workspace made or received, newest first, one row each with its latest state',
    security: bearerSecurity,
    request: {
      params: WorkspaceIdParam,
      query: z.object({
        limit: z
          .string()
          .regex(/^[1-9][0-9]{0,15}$/, 'limit must be a positive integer')
          .transform((v) => Math.min(Number(v), MAX_LIST))
          .optional()
          .openapi({ type: 'integer', minimum: 1, maximum: MAX_LIST }),
      }),
    },
    responses: { 200: json(z.array(Delegation), 'A bare array'), ...errors(400, 401, 404) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const { limit } = c.req.valid('query');
    await authorizeWorkspace(c, id);
    const rows = await listDelegations(c.var.scope.db, id, limit ?? MAX_LIST);
    return c.json(rows.map(delegationView), 200);
  },
);

delegationRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/delegations/{delegationId}',
    tags: ['delegations'],
    summary: 'One delegation, its status and result (only to its source and target)',
    security: bearerSecurity,
    request: { params: DelegationParams },
    responses: { 200: json(Delegation, 'The delegation'), ...errors(400, 401, 404) },
  }),
  async (c) => {
    const { id, delegationId } = c.req.valid('param');
    await authorizeWorkspace(c, id);
    const row = await findDelegation(c.var.scope.db, id, delegationId);
    if (!row) throw new ApiError(404, 'delegation not found');
    return c.json(delegationView(row), 200);
  },
);

const RecordDelegation = z
  .object({
    target_id: Uuid,
    task: Task,
    delegation_id: z
      .string()
      .min(1)
      .max(128)
      .openapi({ description: 'The id the source chose; stored under it when it is a UUID, else under a new id (answered)' }),
  })
  .openapi('RecordDelegation');

delegationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/delegations/record',
    tags: ['delegations'],
    summary: 'Record a delegation the workspace performed itself (stored as dispatched; idempotent on its id)',
    security: bearerSecurity,
    middleware: [readJsonBody(MAX_BODY_BYTES)] as const,
    request: { params: WorkspaceIdParam, body: jsonBody(RecordDelegation) },
    responses: {
      202: json(z.object({ delegation_id: z.string(), status: z.literal('recorded') }).openapi('DelegationRecorded'), 'Recorded'),
      ...errors(400, 401, 403, 404, 409, 413),
    },
  }),
  async (c) => {
    const { id: sourceId } = c.req.valid('param');
    const input = c.req.valid('json');
    if (input.target_id === sourceId) throw new ApiError(400, 'self-delegation not permitted');
    await authorizeWorkspace(c, sourceId);
    await assertMayDelegate(c, sourceId, input.target_id);
    const delegationId = isUuid(input.delegation_id) ? input.delegation_id.toLowerCase() : crypto.randomUUID();
    const row = await recordDelegation(c.var.scope.db, { id: delegationId, sourceId, targetId: input.target_id, task: input.task });
    if (!row) throw new ApiError(409, 'delegation id already in use');
    return c.json({ delegation_id: row.delegation_id, status: 'recorded' as const }, 202);
  },
);

const UpdateDelegation = z
  .object({
    status: z.enum(['completed', 'failed', 'queued']),
    error: OptionalText,
    response_preview: OptionalText,
  })
  .openapi('UpdateDelegation');

delegationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/delegations/{delegationId}/update',
    tags: ['delegations'],
    summary: 'The source reports the state of a delegation it performed; a completed or failed delegation stays so',
    security: bearerSecurity,
    middleware: [readJsonBody(MAX_BODY_BYTES)] as const,
    request: { params: DelegationParams, body: jsonBody(UpdateDelegation) },
    responses: {
      200: json(z.object({ status: z.enum(DELEGATION_STATUSES), delegation_id: z.string() }).openapi('DelegationUpdated'), 'Updated'),
      ...errors(400, 401, 403, 404, 409, 413),
    },
  }),
  async (c) => {
    const { id, delegationId } = c.req.valid('param');
    const input = c.req.valid('json');
    await authorizeWorkspace(c, id);
    const scope = c.var.scope;
    const updated = await settleDelegation(
      scope.db,
      delegationId,
      { status: input.status, error: input.error, responsePreview: input.response_preview },
      { sourceId: id },
    );
    if (updated) {
      announceSettled(scope, updated);
      return c.json({ status: updated.status, delegation_id: updated.delegation_id }, 200);
    }
    const current = await findDelegation(scope.db, id, delegationId);
    if (!current) throw new ApiError(404, 'delegation not found');
    if (current.source_id !== id) throw new ApiError(403, 'only the delegating workspace may update a delegation');
    // Only a terminal delegation refuses an update; repeating its final status is a harmless retry.
    if (current.status === input.status) return c.json({ status: current.status, delegation_id: current.delegation_id }, 200);
    throw new ApiError(409, 'delegation already finished', { status: current.status });
  },
);

function delegationView(row: DelegationRow) {
  return {
    delegation_id: row.delegation_id,
    type: 'delegation' as const,
    source_id: row.source_id,
    target_id: row.target_id,
    summary: row.summary,
    status: row.status,
    response_preview: row.response_preview,
    error: row.error,
    error_detail: row.error,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}
