import { createRoute, z } from '@hono/zod-openapi';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { Workspace, WorkspaceAdmin, WorkspaceIdParam, WorkspaceRemoved } from '../api/schemas';
import { authorizeAdmin, authorizeWorkspace, authorizeWorkspaceRead, isOperator } from '../auth/guards';
import { issueToken, randomSecret } from '../auth/tokens';
import type { DeliveryMode, WorkspaceStatus } from '../db/schema';
import { ApiError, pgError } from '../errors';
import { publishEvent } from '../events/publish';
import { KiB } from '../lib/body';
import { platformUrl } from '../lib/platform-url';
import type { RequestScope } from '../lib/request-scope';
import { encryptSecret, importSecretsKey } from '../lib/secret-box';
import { assertAgentUrl } from '../lib/url-policy';
import { coordinatorOf, SUBSCRIBER_CREDENTIAL_HEADER, subscriberHeaderValue } from '../coordinator';
import { announceTreeChange, eventHub } from '../events/hub';
import { NO_PROVISIONER_TEXT } from '../provisioning/provision';
import { provisionerFor } from '../provisioning/provisioner';
import { requestRestart } from '../provisioning/restart';
import { stopAgents } from '../provisioning/stop';
import { connectionInfo } from '../workspaces/connection-snippets';
import { createWorkspaceSchema, patchWorkspaceSchema, type CreateWorkspaceInput } from '../workspaces/validation';
import { insertWorkspace, listWorkspaces, readWorkspace, removeWorkspaceTree, updateWorkspace, workspaceIsLive } from '../workspaces/queries';
import { workspaceRemoved } from '../workspaces/registration';

export const workspaceRoutes = newRouter();

const Created = z
  .object({
    id: z.string(),
    status: z.string(),
    delivery_mode: z.string(),
    workspace_access: z.string(),
    awareness_namespace: z.string(),
    external: z.boolean().optional(),
    connection: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({ description: 'External workspaces without a URL: the one-time auth token and copy-paste snippets' }),
  })
  .openapi('WorkspaceCreated');

workspaceRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces',
    tags: ['workspaces'],
    summary: 'Create a workspace (external ones get a one-time token and connection snippets)',
    security: bearerSecurity,
    middleware: [readJsonBody(64 * KiB)] as const,
    request: { body: jsonBody(createWorkspaceSchema) },
    responses: { 201: json(Created, 'Created'), ...errors(400, 401, 413, 503) },
  }),
  async (c) => {
  await authorizeAdmin(c);
  const input = c.req.valid('json');
  const scope = c.var.scope;
  const external = input.external === true || input.runtime === 'external';
  const deliveryMode: DeliveryMode = input.delivery_mode ?? 'push';
  const url = input.url ? assertAgentUrl(c.env, input.url) : undefined;
  // Encrypt before the transaction so a missing key fails with nothing written.
  const sealed = await sealSecrets(c.env.SECRETS_ENCRYPTION_KEY, input.secrets);
  if (input.parent_id && !(await workspaceIsLive(scope.db, input.parent_id))) throw new ApiError(400, 'parent workspace not found');

  const status: WorkspaceStatus = external ? (url ? 'online' : 'awaiting_agent') : provisionerFor(c.env) ? 'provisioning' : 'failed';
  const token = external && !url ? await issueToken('workspace') : undefined;

  const created = await insertWorkspace(scope.db, {
    row: {
      name: input.name,
      role: input.role ?? null,
      parentId: input.parent_id ?? null,
      runtime: external ? 'external' : (input.runtime ?? 'langgraph'),
      model: input.model ?? null,
      tier: input.tier && input.tier > 0 ? input.tier : 3,
      status,
      url: url ?? null,
      deliveryMode,
      budgetLimit: input.budget_limit ?? null,
      maxConcurrentTasks: input.max_concurrent_tasks && input.max_concurrent_tasks > 0 ? input.max_concurrent_tasks : 1,
      hibernationIdleMinutes: input.hibernation_idle_minutes ?? 0,
      workspaceDir: input.workspace_dir ?? null,
      workspaceAccess: input.workspace_access ?? 'none',
      platformInboundSecret: randomSecret(),
      lastSampleError: status === 'failed' ? NO_PROVISIONER_TEXT : null,
    },
    secrets: sealed,
    token,
  }).catch((err: unknown) => {
    throw treeGuardRefusal(err) ?? err;
  });

  announceCreated(scope, created, input, status);
  // Create → provisioning → start: the coordinator runs the first cycle, detached from this request.
  if (status === 'provisioning') scope.defer('provision new workspace', () => requestRestart(c.env, created, 'provision'));
  const base = { id: created, status, delivery_mode: deliveryMode, workspace_access: input.workspace_access ?? 'none', awareness_namespace: `workspace:${created}` };
  if (!external) return c.json(base, 201);
  if (url) return c.json({ ...base, external: true }, 201);
  return c.json({ ...base, external: true, connection: connectionInfo(platformUrl(c), created, token!.plaintext, deliveryMode) }, 201);
  },
);

workspaceRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces',
    tags: ['workspaces'],
    summary: 'Every live workspace, with operator-only fields',
    security: bearerSecurity,
    responses: { 200: json(z.array(WorkspaceAdmin), 'Workspaces, oldest first'), ...errors(401) },
  }),
  async (c) => {
    await authorizeAdmin(c);
    const rows = await listWorkspaces(c.var.scope.db);
    return c.json(rows as never, 200);
  },
);

workspaceRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}',
    tags: ['workspaces'],
    summary: "One workspace (operators, or its own token); a removed one is 410 with a re-onboarding hint, also to its agent's revoked token",
    security: bearerSecurity,
    request: { params: WorkspaceIdParam },
    responses: {
      200: json(Workspace, 'The workspace'),
      410: json(WorkspaceRemoved, 'Removed: the agent should re-onboard (`hint`)'),
      ...errors(400, 401, 404),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const access = await authorizeWorkspaceRead(c, id);
    if (access.removed) throw workspaceRemoved(id, access.removedAt);
    const row = await readWorkspace(c.var.scope.db, id);
    // Removed between the two reads: the tombstone answer is still the true one.
    if (!row) throw workspaceRemoved(id, null);
    return c.json(row as never, 200);
  },
);

workspaceRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/workspaces/{id}',
    tags: ['workspaces'],
    summary: 'Update a workspace; moving it in the tree (parent_id) is for operators only',
    security: bearerSecurity,
    middleware: [readJsonBody(64 * KiB)] as const,
    request: { params: WorkspaceIdParam, body: jsonBody(patchWorkspaceSchema) },
    responses: {
      200: json(z.object({ status: z.literal('updated'), needs_restart: z.boolean().optional() }), 'Updated'),
      ...errors(400, 401, 403, 404, 413),
    },
  }),
  async (c) => {
  const { id } = c.req.valid('param');
  const input = c.req.valid('json');
  const credential = await authorizeWorkspace(c, id);
  const scope = c.var.scope;
  if (input.parent_id !== undefined) {
    // Where a workspace sits decides whom it may talk to: an agent cannot move itself.
    if (!isOperator(credential)) throw new ApiError(403, 'moving a workspace in the tree is an operator action');
    if (input.parent_id && !(await workspaceIsLive(scope.db, input.parent_id))) throw new ApiError(400, 'parent workspace not found');
  }
  let updated: boolean;
  try {
    updated = await updateWorkspace(scope.db, id, {
      name: input.name,
      role: input.role,
      tier: input.tier,
      runtime: input.runtime,
      parentId: input.parent_id,
      workspaceDir: input.workspace_dir,
      maxConcurrentTasks: input.max_concurrent_tasks,
      hibernationIdleMinutes: input.hibernation_idle_minutes,
    });
  } catch (err) {
    throw treeGuardRefusal(err) ?? err;
  }
  if (!updated) throw new ApiError(404, 'workspace not found');
  // Whom it may reach (and who may reach it) changed: live feeds must not filter with the old tree.
  if (input.parent_id !== undefined) await announceTreeChange(c.env);
  return c.json({ status: 'updated' as const, ...(input.workspace_dir === null ? { needs_restart: true } : {}) }, 200);
  },
);

const StopFailures = z
  .object({ error: z.string(), removed_count: z.number().int(), stop_failures: z.array(z.string()).openapi({ description: 'Workspace ids whose agent did not stop' }) })
  .openapi('StopFailures');

const ConfirmationRequired = z
  .object({
    error: z.string(),
    status: z.literal('confirmation_required'),
    children: z.array(z.object({ id: z.string(), name: z.string() })),
    children_count: z.number().int(),
  })
  .openapi('ConfirmationRequired');

workspaceRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/workspaces/{id}',
    tags: ['workspaces'],
    summary:
      'Remove a workspace (and, with confirm=true, its descendants) and stop their agents, descendants first (purge=true also removes their volumes); of concurrent deletes one wins, the rest 404',
    security: bearerSecurity,
    request: { params: WorkspaceIdParam, query: z.object({ confirm: z.enum(['true', 'false']).optional(), purge: z.enum(['true', 'false']).optional() }) },
    responses: {
      200: json(z.object({ status: z.literal('removed'), cascade_deleted: z.number().int() }), 'Removed'),
      409: json(ConfirmationRequired, 'The workspace has children: pass confirm=true'),
      502: json(StopFailures, 'Removed, but some agents could not be stopped (a later orphan sweep stops them)'),
      ...errors(400, 401, 404),
    },
  }),
  async (c) => {
  await authorizeAdmin(c);
  const { id } = c.req.valid('param');
  const query = c.req.valid('query');
  const confirmed = query.confirm === 'true';
  const scope = c.var.scope;
  const outcome = await removeWorkspaceTree(scope.db, id, { confirmed });
  if (outcome.kind === 'not_found') throw new ApiError(404, 'workspace not found');
  if (outcome.kind === 'needs_confirmation') {
    return c.json(
      {
        error: 'confirmation required: workspace has children (pass ?confirm=true to delete them too)',
        status: 'confirmation_required' as const,
        children: outcome.children.map((w) => ({ id: w.id, name: w.name })),
        children_count: outcome.children.length,
      },
      409,
    );
  }
  // Descendants first (SPEC §3 step 5), so a canvas never shows a child whose parent is already
  // gone and no parent's agent is stopped while its children still run.
  const cascaded = outcome.removed.filter((w) => w.id !== id);
  const order = [...[...cascaded].reverse(), ...outcome.removed.filter((w) => w.id === id)];
  // Announced and forgotten before the stops (which may take up to their 30 s budget): the removal
  // is committed, so subscribers learn it now and the coordinators' alarms and sockets end now,
  // even if this request dies during a slow stop.
  for (const w of order) forgetWorkspace(scope, w.id, w.id === id ? { cascade_deleted: cascaded.length } : {});
  const stopFailures = await stopAgents(scope, order, { purge: query.purge === 'true' });
  if (stopFailures.length > 0) {
    // The workspaces stay removed; the provisioner's own text stays in the log.
    return c.json({ error: 'workspace removed but some agents could not be stopped', removed_count: order.length, stop_failures: stopFailures }, 502);
  }
  return c.json({ status: 'removed' as const, cascade_deleted: cascaded.length }, 200);
  },
);

workspaceRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/events',
    tags: ['workspaces'],
    summary: "Live canvas feed for one workspace: a WebSocket served by the workspace's coordinator",
    security: bearerSecurity,
    request: { params: WorkspaceIdParam },
    responses: { 101: { description: 'Switching to the WebSocket protocol' }, ...errors(400, 401, 404, 426, 503) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const credential = await authorizeWorkspace(c, id);
    if (c.req.header('Upgrade') !== 'websocket') throw new ApiError(426, 'expected a websocket upgrade');
    const stub = coordinatorOf(c.env, id);
    const headers = new Headers(c.req.raw.headers);
    headers.delete(SUBSCRIBER_CREDENTIAL_HEADER);
    if (credential.kind === 'workspace' || credential.kind === 'org') {
      headers.set(SUBSCRIBER_CREDENTIAL_HEADER, subscriberHeaderValue({ kind: credential.kind, tokenId: credential.tokenId }));
    }
    // An org token's feed is found again through the hub when the token is revoked.
    if (credential.kind === 'org') await eventHub(c.env).noteOrgFeed(credential.tokenId, id);
    const res = await stub.fetch(new Request(c.req.raw, { headers }));
    // The coordinator re-checks the token once the socket is tagged: a revoke since our check lands here.
    if (res.status === 401) throw new ApiError(401, 'invalid auth token');
    if (res.status !== 101) throw new ApiError(503, 'live events unavailable — retry shortly');
    return res as never;
  },
);

function announceCreated(scope: RequestScope, id: string, input: CreateWorkspaceInput, status: WorkspaceStatus): void {
  const info = { name: input.name, tier: input.tier ?? 3, runtime: input.runtime ?? 'langgraph' };
  if (status === 'online') publishEvent(scope, 'WORKSPACE_ONLINE', id, { name: input.name, external: true });
  else if (status === 'awaiting_agent') publishEvent(scope, 'WORKSPACE_AWAITING_AGENT', id, { name: input.name, external: true });
  else if (status === 'failed') publishEvent(scope, 'WORKSPACE_PROVISION_FAILED', id, { ...info, error: NO_PROVISIONER_TEXT });
  else publishEvent(scope, 'WORKSPACE_PROVISIONING', id, info);
}

/** The tree guard (drizzle/0003, 0005) serialises moves and inserts and refuses cycles and removed parents. */
function treeGuardRefusal(err: unknown): ApiError | undefined {
  const constraint = pgError(err)?.constraint;
  if (constraint === 'workspaces_parent_acyclic') return new ApiError(400, 'a workspace cannot be its own ancestor');
  if (constraint === 'workspaces_parent_live') return new ApiError(400, 'parent workspace not found');
  return undefined;
}

function forgetWorkspace(scope: RequestScope, id: string, payload: Record<string, unknown>): void {
  publishEvent(scope, 'WORKSPACE_REMOVED', id, payload);
  scope.defer('forget coordinator state', () => coordinatorOf(scope.env, id).forget());
}

async function sealSecrets(keyMaterial: string | undefined, values: Record<string, string> | undefined) {
  const entries = Object.entries(values ?? {});
  if (entries.length === 0) return [];
  const key = await importSecretsKey(keyMaterial);
  return Promise.all(entries.map(async ([k, v]) => ({ key: k, encryptedValue: await encryptSecret(key, v) })));
}
