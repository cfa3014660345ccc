import { createRoute, z } from '@hono/zod-openapi';
import { bearerSecurity, errors, json, newRouter } from '../api/openapi';
import { WorkspaceIdParam } from '../api/schemas';
import { authorizeWorkspace, authorizeWorkspaceRead, type WorkspaceRead } from '../auth/guards';
import { WORKSPACE_STATUSES } from '../db/schema';
import { ApiError } from '../errors';
import { openWorkspaceSecrets } from '../secrets/values';
import { workspaceStatus } from '../workspaces/queries';

export const workspaceStateRoutes = newRouter();

const WorkspaceState = z
  .object({ workspace_id: z.string(), status: z.enum(WORKSPACE_STATUSES), paused: z.boolean(), deleted: z.literal(false) })
  .openapi('WorkspaceState');

const WorkspaceDeleted = z
  .object({ error: z.string(), workspace_id: z.string(), status: z.literal('removed').optional(), deleted: z.literal(true) })
  .openapi('WorkspaceDeleted');

workspaceStateRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/state',
    tags: ['workspaces'],
    summary: "The SDK's run-loop check: live (paused or not), or deleted. 404 means deleted and nothing else: auth failures are 401",
    security: bearerSecurity,
    request: { params: WorkspaceIdParam },
    responses: {
      200: json(WorkspaceState, 'Live'),
      // The SDK reads any 404 on this path as "deleted, exit", so only a workspace that is gone
      // (to a credential allowed to know) answers 404.
      404: json(WorkspaceDeleted, 'Removed, or (operators) never existed: the agent should stop'),
      ...errors(400, 401, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const read = await readOrGone(c, id);
    // A token's lookup proved the workspace live a moment ago; a removal since still reads as removed.
    const status = read.removed ? 'removed' : await workspaceStatus(c.var.scope.db, id);
    if (status === undefined) throw gone(id, 'workspace not found');
    if (status === 'removed') throw gone(id, 'workspace removed', { status: 'removed' });
    return c.json({ workspace_id: id, status, paused: status === 'paused', deleted: false as const }, 200);
  },
);

/** authorizeWorkspaceRead, with its one 404 (an operator naming an unknown workspace) in this route's shape. */
async function readOrGone(c: Parameters<typeof authorizeWorkspaceRead>[0], id: string): Promise<WorkspaceRead> {
  try {
    return await authorizeWorkspaceRead(c, id);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) throw gone(id, 'workspace not found');
    throw err;
  }
}

function gone(id: string, error: string, extra: Record<string, unknown> = {}): ApiError {
  return new ApiError(404, error, { workspace_id: id, ...extra, deleted: true });
}

const SecretsUnavailable = z
  .object({ error: z.string(), failed_keys: z.array(z.string()).optional(), code: z.string().optional() })
  .openapi('SecretsUnavailable');

workspaceStateRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/secrets/values',
    tags: ['workspaces'],
    summary: "The workspace's secrets, decrypted: global secrets overlaid by the workspace's own, as a flat {KEY: value} object",
    security: bearerSecurity,
    request: { params: WorkspaceIdParam },
    responses: {
      200: json(z.record(z.string(), z.string()).openapi('SecretValues'), 'Every secret, or {} when there are none (never a partial bundle)'),
      503: json(SecretsUnavailable, 'A secret could not be decrypted (failed_keys names which), or encryption is not configured'),
      ...errors(400, 401, 404),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    await authorizeWorkspace(c, id);
    c.header('Cache-Control', 'no-store');
    const bundle = await openWorkspaceSecrets(c.var.scope.db, c.env.SECRETS_ENCRYPTION_KEY, id);
    if (!bundle.ok) {
      throw new ApiError(503, 'secrets unavailable', { failed_keys: bundle.failedKeys }, { 'Cache-Control': 'no-store' });
    }
    return c.json(bundle.values, 200);
  },
);
