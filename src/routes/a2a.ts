import { and, eq, getTableColumns } from 'drizzle-orm';
import { Hono } from 'hono';
import { parseBearer } from '../auth/tokens';
import { resolveCredential } from '../auth/credentials';
import { isOperator } from '../auth/middleware';
import { parseCallerHeader } from '../a2a/caller';
import { proxyA2A } from '../a2a/proxy';
import { a2aQueue } from '../db/schema';
import { storedJson } from '../db/stored-json';
import type { AppEnv } from '../env';
import { ApiError } from '../errors';
import { jsonProblem, MiB, readBodyText } from '../lib/body';
import { findJsonTextProblem } from '../lib/json-text';
import { isUuid, parseWorkspaceId } from '../lib/ids';

export const a2aRoutes = new Hono<AppEnv>();

export const MAX_A2A_REQUEST_BYTES = MiB;
const MAX_X_TIMEOUT_SECONDS = 24 * 3600;

a2aRoutes.post('/:id/a2a', async (c) => {
  const targetId = parseWorkspaceId(c.req.param('id'));
  // Size first: an oversized body is refused before anything is looked up or recorded.
  const rawBody = await readBodyText(c, MAX_A2A_REQUEST_BYTES);
  // Then the JSON gate: a message that could not be recorded must not be delivered either.
  const problem = findJsonTextProblem(rawBody);
  if (problem) throw jsonProblem(problem);
  return proxyA2A(c.var.scope, {
    targetId,
    rawBody,
    headerCaller: parseCallerHeader(c.req.header('X-Workspace-ID')),
    bearer: parseBearer(c.req.header('Authorization')),
    timeoutSeconds: parseXTimeout(c.req.header('X-Timeout')),
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
a2aRoutes.get('/:id/a2a/queue/:queueId', async (c) => {
  const notFound = new ApiError(404, 'queue item not found');
  const workspaceId = c.req.param('id');
  const queueId = c.req.param('queueId');
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
    expired: row.status === 'queued' && row.expiresAt !== null && row.expiresAt.getTime() <= Date.now(),
    ...(row.status === 'completed' ? { response_status: row.responseStatus, response_body: row.responseBody } : {}),
  });
});
