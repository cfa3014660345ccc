import { createRoute, z } from '@hono/zod-openapi';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { clampedPositiveInt, WorkspaceIdParam } from '../api/schemas';
import { authorizeWorkspace } from '../auth/guards';
import { MEMORY_SCOPES, type MemoryScope } from '../db/schema';
import { ApiError } from '../errors';
import { KiB } from '../lib/body';
import { commitMemory, editMemory, forgetMemory, MAX_MEMORIES_PER_WORKSPACE, recallMemories } from '../memories/queries';

export const memoryRoutes = newRouter();

const MAX_CONTENT_BYTES = 64 * KiB;
const MAX_NAMESPACE = 50;
const MAX_QUERY = 256;
const MAX_RECALL = 50;
const DEFAULT_NAMESPACE = 'general';
// Room for 64 KiB of content plus its JSON escaping and the other fields; beyond it, 413.
const MAX_BODY_BYTES = 128 * KiB;

const utf8Bytes = (s: string) => new TextEncoder().encode(s).byteLength;
const SCOPE_RULE = 'scope must be LOCAL, TEAM or GLOBAL';
/** Clients send upper case; any case is accepted, upper case is stored and answered. */
const scopeText = /^(local|team|global)$/i;
const toScope = (v: string) => v.toUpperCase() as MemoryScope;
const scopeDoc = { type: 'string' as const, enum: [...MEMORY_SCOPES], description: 'Case-insensitive' };

const Content = z
  .string()
  .refine((s) => s.trim() !== '', 'content must not be empty')
  .refine((s) => utf8Bytes(s) <= MAX_CONTENT_BYTES, `content must be at most ${MAX_CONTENT_BYTES} bytes`);
const Namespace = z.string().max(MAX_NAMESPACE, `namespace must be at most ${MAX_NAMESPACE} characters`);

const Memory = z
  .object({
    id: z.string(),
    workspace_id: z.string(),
    content: z.string(),
    scope: z.enum(MEMORY_SCOPES),
    namespace: z.string(),
    created_at: z.string().openapi({ format: 'date-time' }),
  })
  .openapi('Memory');

const MemoryParams = WorkspaceIdParam.extend({
  memoryId: z
    .guid({ message: 'invalid memory ID' })
    .transform((v) => v.toLowerCase())
    .openapi({ param: { name: 'memoryId', in: 'path' }, type: 'string', format: 'uuid' }),
});

// Other keys are ignored: CH and RT3 send `workspace_id` (the path already names the workspace).
const CommitMemory = z
  .object({
    content: Content,
    scope: z.string().regex(scopeText, SCOPE_RULE).transform(toScope).openapi(scopeDoc),
    namespace: Namespace.optional().openapi({ description: `Default '${DEFAULT_NAMESPACE}' (also when empty)` }),
  })
  .openapi('CommitMemory');

memoryRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/memories',
    tags: ['memories'],
    summary: 'Remember a fact: LOCAL (this workspace), TEAM (its hierarchy), GLOBAL (everyone; root workspaces only)',
    security: bearerSecurity,
    middleware: [readJsonBody(MAX_BODY_BYTES)] as const,
    request: { params: WorkspaceIdParam, body: jsonBody(CommitMemory) },
    responses: {
      // Exactly 201: the runtime's builtin commit_memory treats anything else as a failure.
      201: json(z.object({ id: z.string(), scope: z.enum(MEMORY_SCOPES), namespace: z.string() }).openapi('MemoryCommitted'), 'Stored'),
      ...errors(400, 401, 403, 404, 413, 429),
    },
  }),
  async (c) => {
    const { id: workspaceId } = c.req.valid('param');
    const input = c.req.valid('json');
    await authorizeWorkspace(c, workspaceId);
    const namespace = input.namespace || DEFAULT_NAMESPACE;
    const outcome = await commitMemory(c.var.scope.db, { workspaceId, content: input.content, scope: input.scope, namespace });
    if (outcome === 'not_found') throw new ApiError(404, 'workspace not found');
    if (outcome === 'not_root') throw new ApiError(403, 'only root workspaces can write GLOBAL memories');
    if (outcome === 'full') {
      throw new ApiError(429, 'memory limit reached for this workspace: delete memories to store more', { limit: MAX_MEMORIES_PER_WORKSPACE });
    }
    return c.json({ id: outcome.id, scope: input.scope, namespace }, 201);
  },
);

/** An empty value means "not given": clients build these from optional tool arguments. */
const emptyIsAbsent = (v: string) => (v === '' ? undefined : v);
const noNul = (s: string) => !s.includes('\u0000');

const RecallQuery = z.object({
  scope: z
    .string()
    .regex(/^(local|team|global)?$/i, SCOPE_RULE)
    .transform((v) => (v === '' ? undefined : toScope(v)))
    .optional()
    .openapi({ ...scopeDoc, description: 'Case-insensitive; absent or empty: only this workspace’s own memories, of every scope' }),
  q: z
    .string()
    .max(MAX_QUERY, `q must be at most ${MAX_QUERY} characters`)
    .refine(noNul, 'q must not contain NUL')
    .transform(emptyIsAbsent)
    .optional()
    .openapi({ description: 'Case-insensitive substring of the content' }),
  namespace: Namespace.refine(noNul, 'namespace must not contain NUL').transform(emptyIsAbsent).optional(),
  limit: clampedPositiveInt('limit', MAX_RECALL).optional(),
});

memoryRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/memories',
    tags: ['memories'],
    summary: 'Recall memories, newest first (LOCAL: own; TEAM: the hierarchy the A2A rule allows; GLOBAL: everyone; no scope: own only)',
    description: 'The `workspace_id` query parameter some clients send is ignored: the path names the workspace.',
    security: bearerSecurity,
    request: { params: WorkspaceIdParam, query: RecallQuery },
    responses: { 200: json(z.array(Memory), 'Memories'), ...errors(400, 401, 404) },
  }),
  async (c) => {
    const { id: workspaceId } = c.req.valid('param');
    const query = c.req.valid('query');
    await authorizeWorkspace(c, workspaceId);
    const rows = await recallMemories(c.var.scope.db, workspaceId, { ...query, limit: query.limit ?? MAX_RECALL });
    return c.json(rows as never, 200);
  },
);

const EditMemory = z
  .object({
    content: Content.optional(),
    namespace: Namespace.min(1, 'namespace must not be empty').optional(),
  })
  .refine((p) => p.content !== undefined || p.namespace !== undefined, 'at least one of content or namespace must be set')
  .openapi('EditMemory');

memoryRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/workspaces/{id}/memories/{memoryId}',
    tags: ['memories'],
    summary: "Edit one of this workspace's own memories (another workspace's is 404)",
    security: bearerSecurity,
    middleware: [readJsonBody(MAX_BODY_BYTES)] as const,
    request: { params: MemoryParams, body: jsonBody(EditMemory) },
    responses: { 200: json(Memory, 'Edited'), ...errors(400, 401, 404, 413) },
  }),
  async (c) => {
    const { id: workspaceId, memoryId } = c.req.valid('param');
    const patch = c.req.valid('json');
    await authorizeWorkspace(c, workspaceId);
    const row = await editMemory(c.var.scope.db, workspaceId, memoryId, patch);
    if (!row) throw new ApiError(404, 'memory not found');
    return c.json(row as never, 200);
  },
);

memoryRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/workspaces/{id}/memories/{memoryId}',
    tags: ['memories'],
    summary: "Forget one of this workspace's own memories (another workspace's is 404)",
    security: bearerSecurity,
    request: { params: MemoryParams },
    responses: { 200: json(z.object({ status: z.literal('deleted') }), 'Deleted'), ...errors(400, 401, 404) },
  }),
  async (c) => {
    const { id: workspaceId, memoryId } = c.req.valid('param');
    await authorizeWorkspace(c, workspaceId);
    if (!(await forgetMemory(c.var.scope.db, workspaceId, memoryId))) throw new ApiError(404, 'memory not found');
    return c.json({ status: 'deleted' as const }, 200);
  },
);
