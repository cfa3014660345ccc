import { createRoute, z } from '@hono/zod-openapi';
import { bearerSecurity, errors, json, newRouter } from '../api/openapi';
import { WorkspaceIdParam } from '../api/schemas';
import { authorizeAdmin, authorizeWorkspace } from '../auth/guards';
import { ApiError } from '../errors';
import { publishEvent } from '../events/publish';
import type { Context } from 'hono';
import type { AppEnv } from '../env';
import type { RequestScope } from '../lib/request-scope';
import { provisionerFor, type Provisioner } from '../provisioning/provisioner';
import { hibernateWorkspace } from '../provisioning/hibernate';
import { announceProvisioning, requestRestart } from '../provisioning/restart';
import { stopAgents } from '../provisioning/stop';
import {
  agentOf,
  enterProvisioning,
  lifecycleView,
  pauseTree,
  resumeTree,
  type LifecycleView,
} from '../workspaces/lifecycle';
import { workspaceIsLive } from '../workspaces/queries';

// SPEC §18 lifecycle routes. Operators, or the workspace's own token (WorkspaceAuth: an agent may
// restart or pause itself, as in the seed); the console is for operators only (SPEC §17).

export const lifecycleRoutes = newRouter();

const PROVISIONER_MISSING = 'provisioner not available';
const PARENT_PAUSED = 'a parent workspace is paused — resume it first';

const Conflict = z
  .object({
    error: z.string(),
    status: z.string().optional().openapi({ description: "The workspace's current status, when that is the conflict" }),
    active_tasks: z.number().int().optional(),
  })
  .openapi('LifecycleConflict');

const ForceQuery = z.object({ force: z.enum(['true', 'false']).optional() });

function requireProvisioner(scope: RequestScope): Provisioner {
  const provisioner = provisionerFor(scope.env);
  if (!provisioner) throw new ApiError(503, PROVISIONER_MISSING);
  return provisioner;
}

/** Every lifecycle route's start: the caller may act on the workspace, which exists and is live. */
async function authorizedView(c: Context<AppEnv>, id: string): Promise<{ scope: RequestScope; view: LifecycleView }> {
  await authorizeWorkspace(c, id);
  const view = await lifecycleView(c.var.scope.db, id);
  if (!view) throw new ApiError(404, 'workspace not found');
  return { scope: c.var.scope, view };
}

lifecycleRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/restart',
    tags: ['lifecycle'],
    summary: 'Stop and re-provision the agent (fresh token and inbound secret); the cycle runs in the background',
    security: bearerSecurity,
    request: { params: WorkspaceIdParam },
    responses: {
      200: json(z.object({ status: z.literal('provisioning') }).openapi('Restarting'), 'Restarting'),
      409: json(Conflict, 'Paused (itself or a parent), or external (its agent is not run here)'),
      ...errors(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const { scope, view } = await authorizedView(c, id);
    requireProvisioner(scope);
    if (view.ancestor_paused) throw new ApiError(409, PARENT_PAUSED);
    if (view.status === 'paused') throw new ApiError(409, 'workspace is paused — resume it instead', { status: view.status });
    if (view.runtime === 'external') throw new ApiError(409, 'external workspace: its agent is not run by this platform');
    // Flipped here, so the answer and every read after it agree; the cycle then stops and starts.
    const entered = await enterProvisioning(scope.db, id, { from: ['provisioning', 'online', 'degraded', 'offline', 'failed', 'awaiting_agent', 'hibernated'] });
    if (!entered) throw new ApiError(409, 'workspace is changing state — try again');
    if (entered.previous_status !== 'provisioning') announceProvisioning(scope, id, entered);
    await requestRestart(scope.env, id);
    return c.json({ status: 'provisioning' as const }, 200);
  },
);

lifecycleRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/pause',
    tags: ['lifecycle'],
    summary: 'Pause the workspace and its descendants: agents stopped, nothing restarts them until resumed',
    security: bearerSecurity,
    request: { params: WorkspaceIdParam },
    responses: {
      200: json(z.object({ status: z.literal('paused'), paused_count: z.number().int() }).openapi('Paused'), 'Paused'),
      ...errors(400, 401, 404),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    await authorizeWorkspace(c, id);
    const scope = c.var.scope;
    const paused = await pauseTree(scope.db, id);
    if (!paused) throw new ApiError(404, 'workspace not found or already paused');
    for (const w of paused) publishEvent(scope, 'WORKSPACE_PAUSED', w.id, { name: w.name });
    // Best effort within the budget: a paused workspace whose agent did not stop is the orphan sweep's.
    await stopAgents(scope, [...paused].reverse(), { purge: false });
    return c.json({ status: 'paused' as const, paused_count: paused.length }, 200);
  },
);

lifecycleRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/resume',
    tags: ['lifecycle'],
    summary: 'Resume a paused workspace and its paused descendants (re-provisioned; external ones wait for their agent)',
    security: bearerSecurity,
    request: { params: WorkspaceIdParam },
    responses: {
      200: json(z.object({ status: z.literal('provisioning'), resumed_count: z.number().int() }).openapi('Resumed'), 'Resuming'),
      409: json(Conflict, 'A parent is still paused'),
      ...errors(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const { scope, view } = await authorizedView(c, id);
    if (view.status !== 'paused') throw new ApiError(404, 'workspace not found or not paused');
    requireProvisioner(scope);
    if (view.ancestor_paused) throw new ApiError(409, PARENT_PAUSED);
    const resumed = await resumeTree(scope.db, id);
    if (!resumed) throw new ApiError(404, 'workspace not found or not paused');
    for (const w of resumed) {
      if (w.status !== 'provisioning') continue;
      announceProvisioning(scope, w.id, w);
      scope.defer('resume workspace', () => requestRestart(scope.env, w.id));
    }
    return c.json({ status: 'provisioning' as const, resumed_count: resumed.length }, 200);
  },
);

lifecycleRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/hibernate',
    tags: ['lifecycle'],
    summary: 'Stop an idle online agent now; the next A2A message wakes it (503 + Retry-After while it starts)',
    security: bearerSecurity,
    request: { params: WorkspaceIdParam, query: ForceQuery },
    responses: {
      200: json(z.object({ status: z.literal('hibernated') }).openapi('Hibernated'), 'Hibernated'),
      409: json(Conflict, 'Not online/degraded (`status`), external, or busy (`active_tasks`; pass force=true)'),
      ...errors(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const force = c.req.valid('query').force === 'true';
    const { scope, view } = await authorizedView(c, id);
    // Waking needs a provisioner too: without one a hibernated agent could never come back.
    const provisioner = requireProvisioner(scope);
    if (view.runtime === 'external') throw new ApiError(409, 'external workspace: its agent is not run by this platform');
    // 409, not Go's 404: the workspace exists, it is just not in a state that can hibernate.
    if (view.status !== 'online' && view.status !== 'degraded') throw new ApiError(409, 'workspace is not online', { status: view.status });
    if (view.active_tasks > 0 && !force) {
      throw new ApiError(409, 'workspace has active tasks; use ?force=true to terminate them', { active_tasks: view.active_tasks });
    }
    if (!(await hibernateWorkspace(scope, provisioner, id, { force }))) throw new ApiError(409, 'workspace is changing state — try again');
    return c.json({ status: 'hibernated' as const }, 200);
  },
);

/** Console output is diagnostics, not a log archive: the tail is what explains a failed boot. */
export const CONSOLE_MAX_CHARS = 64 * 1024;

lifecycleRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/console',
    tags: ['lifecycle'],
    summary: "The agent's bootstrap console output (its last 64 KiB), for diagnosing a failed start",
    security: bearerSecurity,
    request: { params: WorkspaceIdParam },
    responses: {
      200: json(z.object({ output: z.string(), truncated: z.boolean() }).openapi('ConsoleOutput'), 'Console output'),
      ...errors(400, 401, 404, 501, 502),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    await authorizeAdmin(c);
    const scope = c.var.scope;
    const provisioner = provisionerFor(scope.env);
    if (!provisioner) throw new ApiError(501, 'no provisioner on this platform instance');
    if (!(await workspaceIsLive(scope.db, id))) throw new ApiError(404, 'workspace not found');
    const agent = await agentOf(scope.db, id);
    if (agent?.runtime === 'external') throw new ApiError(404, 'external workspace: no console');
    const result = await provisioner.console(id, agent?.instance_id ?? null);
    if (!result.ok) throw new ApiError(502, 'console output unavailable');
    const output = result.value.output;
    const truncated = output.length > CONSOLE_MAX_CHARS;
    // Never starting with half a surrogate pair.
    const tail = truncated ? output.slice(output.length - CONSOLE_MAX_CHARS).replace(/^[\udc00-\udfff]/, '') : output;
    return c.json({ output: tail, truncated }, 200);
  },
);
