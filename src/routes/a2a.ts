import { createRoute, z } from '@hono/zod-openapi';
import { and, eq, getTableColumns } from 'drizzle-orm';
import { callerFromHeaders } from '../a2a/caller';
import { proxyA2A } from '../a2a/proxy';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, ErrorBody, errors, json, jsonBody, newRouter, validated } from '../api/openapi';
import { CallerHeaders, QueueItem, WorkspaceIdParam } from '../api/schemas';
import { resolveCredential } from '../auth/credentials';
import { isOperator } from '../auth/guards';
import { parseBearer } from '../auth/tokens';
import { a2aQueue } from '../db/schema';
import { storedJson } from '../db/stored-json';
import { ApiError } from '../errors';
import { MiB } from '../lib/body';
import { isUuid } from '../lib/ids';

export const a2aRoutes = newRouter();

export const MAX_A2A_REQUEST_BYTES = MiB;
const MAX_X_TIMEOUT_SECONDS = 24 * 3600;

/** Validated by the proxy's normaliser (JSON-RPC errors, after authentication), not here. */
const A2ARequest = z.unknown().openapi('A2ARequest', {
  type: 'object',
  description: 'A JSON-RPC 2.0 request; A2A v0.2 (`content`) and v0.3 (`parts`) message shapes are accepted and normalised to v0.3',
  example: { jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { role: 'user', messageId: 'm-1', parts: [{ kind: 'text', text: 'hello' }] } } },
});

const A2AHeaders = CallerHeaders.extend({
  'x-timeout': z.string().max(16).optional().openapi({ description: 'Overall deadline in whole seconds (≤ 24 h)' }),
});

const proxyRoute = createRoute({
  method: 'post',
  path: '/workspaces/{id}/a2a',
  tags: ['a2a'],
  summary: 'Proxy an A2A JSON-RPC request to the workspace agent (or its poll inbox)',
  security: bearerSecurity,
  request: { params: WorkspaceIdParam, headers: A2AHeaders, body: jsonBody(A2ARequest) },
  responses: {
    200: json(z.unknown(), "The agent's JSON-RPC response, unchanged (or `{status:'queued'}` for a poll agent)"),
    202: json(z.object({ queued: z.literal(true), queue_id: z.string(), queue_depth: z.number().int(), message: z.string() }), 'Agent busy: queued for delivery'),
    ...errors(400, 401, 402, 403, 404, 413, 502, 503),
    default: json(ErrorBody, "The agent's own error status, relayed with a fixed body (`error`, `upstream_status`), never the agent's text"),
  },
});

/**
 * The hottest route is documented from its contract like every other, but validated here by
 * hand with the same schemas: the generic validators (a middleware per request part, all headers
 * copied into an object, async parses, a JSON validator over an `unknown` body) were a twentieth
 * of the Worker's CPU per proxied call in the bench. The order is the generic one: body size and
 * the JSON gate first (an oversized or unstorable body is refused before anything is looked up,
 * recorded or delivered), then the path, then the headers.
 */
a2aRoutes.openAPIRegistry.registerPath(proxyRoute);
a2aRoutes.post(proxyRoute.path.replace('{id}', ':id'), readJsonBody(MAX_A2A_REQUEST_BYTES, { deferInvalid: true }), async (c) => {
  const { id: targetId } = validated('param', WorkspaceIdParam, { id: c.req.param('id') });
  const headers = validated('header', A2AHeaders, {
    'x-workspace-id': c.req.header('x-workspace-id'),
    'x-source-workspace-id': c.req.header('x-source-workspace-id'),
    'x-timeout': c.req.header('x-timeout'),
  });
  // The agent's response is relayed as is; the contract documents its shape, it cannot type it.
  return proxyA2A(c.get('scope'), {
    targetId,
    body: await c.req.json(),
    headerCaller: callerFromHeaders(headers),
    bearer: parseBearer(c.req.header('Authorization')),
    timeoutSeconds: parseXTimeout(headers['x-timeout']),
  });
});

/** `X-Timeout: N` (seconds, positive integer) overrides the caller-class ceiling; junk is a 400. */
function parseXTimeout(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '' || header.trim() === '0') return undefined;
  if (!/^[1-9][0-9]{0,5}$/.test(header.trim())) throw new ApiError(400, 'X-Timeout must be a whole number of seconds');
  return Math.min(Number(header.trim()), MAX_X_TIMEOUT_SECONDS);
}

/**
 * Queue item status for the caller that enqueued it, the target, or an operator. Every refusal is
 * a 404 so a queue id's existence never leaks to someone who may not see it.
 */
a2aRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/a2a/queue/{queueId}',
    tags: ['a2a'],
    summary: 'Status of a queued A2A request (caller, target or operator; everyone else 404)',
    security: bearerSecurity,
    // Ids are checked in the handler: a malformed one must look exactly like a missing one.
    request: {
      params: z.object({
        id: z.string().openapi({ param: { name: 'id', in: 'path' }, format: 'uuid' }),
        queueId: z.string().openapi({ param: { name: 'queueId', in: 'path' }, format: 'uuid' }),
      }),
    },
    responses: { 200: json(QueueItem, 'The queue item'), ...errors(404) },
  }),
  async (c) => {
  const notFound = new ApiError(404, 'queue item not found');
  const { id: workspaceId, queueId } = c.req.valid('param');
  if (!isUuid(workspaceId) || !isUuid(queueId)) throw notFound;
  const credential = await resolveCredential(c.var.scope, c.req.header('Authorization'));
  if (credential.kind === 'none' || credential.kind === 'invalid') throw notFound;
  const [row] = await c.var.scope.db
    .select({ ...getTableColumns(a2aQueue), responseBody: storedJson(a2aQueue.responseBody) })
    .from(a2aQueue)
    .where(and(eq(a2aQueue.id, queueId.toLowerCase()), eq(a2aQueue.workspaceId, workspaceId.toLowerCase())));
  if (!row) throw notFound;
  const operator = isOperator(credential);
  const party = credential.kind === 'workspace' && (credential.workspaceId === row.callerId || credential.workspaceId === row.workspaceId);
  if (!operator && !party) throw notFound;
  return c.json({
    queue_id: row.id,
    workspace_id: row.workspaceId,
    caller_id: row.callerId,
    status: row.status,
    method: row.method,
    priority: row.priority,
    attempts: row.attempts,
    last_error: row.lastError,
    enqueued_at: row.enqueuedAt,
    dispatched_at: row.dispatchedAt,
    completed_at: row.completedAt,
    expires_at: row.expiresAt,
    expired: row.status === 'expired' || (row.status === 'queued' && row.expiresAt !== null && row.expiresAt.getTime() <= Date.now()),
    ...(row.status === 'completed' ? { response_status: row.responseStatus, response_body: row.responseBody } : {}),
  } as never, 200);
  },
);
