import { createRoute, z } from '@hono/zod-openapi';
import { eq, sql } from 'drizzle-orm';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { entriesOf, Uuid } from '../api/schemas';
import { resolveCredential } from '../auth/credentials';
import { assertOwnToken } from '../auth/guards';
import { issueFirstToken } from '../auth/token-store';
import { DELIVERY_MODES, PG_INT_MAX, workspaces, type DeliveryMode } from '../db/schema';
import { ApiError } from '../errors';
import { publishEvent } from '../events/publish';
import { KiB } from '../lib/body';
import { assertAgentUrl } from '../lib/url-policy';
import { drainQueueInBackground } from '../a2a/queue-drain';

export const registryRoutes = newRouter();

const Register = z
  .object({
    id: Uuid,
    url: z.string().trim().max(2048).optional(),
    agent_card: z.record(z.string(), z.unknown()),
    delivery_mode: z.enum(DELIVERY_MODES).optional(),
  })
  .openapi('Register');

const Registered = z
  .object({
    status: z.literal('registered'),
    delivery_mode: z.enum(DELIVERY_MODES),
    auth_token: z.string().optional().openapi({ description: 'Only on the registration that bootstraps the first token' }),
    platform_inbound_secret: z.string().optional(),
  })
  .openapi('Registered');

const registerRoute = createRoute({
  method: 'post',
  path: '/registry/register',
  tags: ['registry'],
  summary: "An agent announces itself (its own token; none until the workspace's first token exists)",
  security: bearerSecurity,
  middleware: [readJsonBody(256 * KiB)] as const,
  request: { body: jsonBody(Register) },
  responses: { 200: json(Registered, 'Registered'), ...errors(400, 401, 404, 413) },
});

registryRoutes.openapi(registerRoute, async (c) => {
  const input = c.req.valid('json');
  const id = input.id;
  const scope = c.var.scope;
  const credential = await resolveCredential(scope, c.req.header('Authorization'));

  const outcome = await scope.db.transaction(async (tx) => {
    // The row lock is its own statement, so everything after it reads what the previous holder
    // committed (READ COMMITTED snapshots are per statement). Racing registrations serialise here.
    const [row] = await tx
      .select({ status: workspaces.status, deliveryMode: workspaces.deliveryMode, inboundSecret: workspaces.platformInboundSecret })
      .from(workspaces)
      .where(eq(workspaces.id, id))
      .for('update');
    // Workspaces are created by operators; register never conjures one (or revives a removed one).
    if (!row || row.status === 'removed') throw new ApiError(404, 'workspace not found');
    const ownToken = credential.kind === 'workspace' && credential.workspaceId === id;
    // Bootstrap: without its own token, a caller gets one only while the workspace holds none.
    const authToken = ownToken ? undefined : await issueFirstToken(tx, id);
    if (!ownToken && !authToken) assertOwnToken(credential, id);

    const mode: DeliveryMode = input.delivery_mode ?? row.deliveryMode ?? 'push';
    const url = input.url ? assertAgentUrl(c.env, input.url) : undefined;
    if (mode === 'push' && !url) throw new ApiError(400, 'url is required for push delivery (or register with delivery_mode "poll")');

    await tx
      .update(workspaces)
      .set({
        ...(url ? { url } : {}),
        agentCard: input.agent_card,
        status: 'online',
        deliveryMode: mode,
        lastHeartbeatAt: sql`now()`,
        updatedAt: sql`now()`,
      })
      .where(eq(workspaces.id, id));
    return { mode, url, authToken, inboundSecret: row.inboundSecret };
  });

  publishEvent(scope, 'WORKSPACE_ONLINE', id, { url: outcome.url ?? null, agent_card: input.agent_card, delivery_mode: outcome.mode });
  return c.json(
    {
      status: 'registered' as const,
      delivery_mode: outcome.mode,
      ...(outcome.authToken ? { auth_token: outcome.authToken } : {}),
      ...(outcome.inboundSecret ? { platform_inbound_secret: outcome.inboundSecret } : {}),
    },
    200,
  );
});

const Heartbeat = z.object({
  workspace_id: Uuid,
  error_rate: z.number().min(0).max(1).optional(),
  sample_error: z.string().max(4096).optional(),
  active_tasks: z.number().int().min(0).max(100_000).optional(),
  uptime_seconds: z.number().int().min(0).max(PG_INT_MAX).optional(),
  current_task: z.string().max(4096).nullable().optional(),
  // Cents; clamped rather than rejected so a buggy agent still heartbeats. 0 = leave as is.
  monthly_spend: z.number().int().optional(),
  runtime_state: z.enum(['', 'wedged']).optional(),
  runtime_metadata: z
    .object({
      capabilities: entriesOf(z.string().max(64), z.boolean(), 'capability names of at most 64 characters, each true or false').nullable().optional(),
      idle_timeout_seconds: z.number().int().max(PG_INT_MAX).optional(),
    })
    .nullable()
    .optional(),
}).openapi('Heartbeat');

const MAX_SPEND_CENTS = 1e12;

const heartbeatRoute = createRoute({
  method: 'post',
  path: '/registry/heartbeat',
  tags: ['registry'],
  summary: 'Liveness and load from the agent (own token); drains the busy queue when there is room',
  security: bearerSecurity,
  middleware: [readJsonBody(64 * KiB)] as const,
  request: { body: jsonBody(Heartbeat) },
  responses: { 200: json(z.object({ status: z.literal('ok') }), 'Recorded'), ...errors(400, 401, 404, 413) },
});

registryRoutes.openapi(heartbeatRoute, async (c) => {
  const input = c.req.valid('json');
  const id = input.workspace_id;
  const scope = c.var.scope;
  assertOwnToken(await resolveCredential(scope, c.req.header('Authorization')), id);

  const metadata = runtimeMetadata(input.runtime_metadata);
  const nativeStatus = metadata?.capabilities?.status_mgmt === true;
  const spend = Math.min(Math.max(input.monthly_spend ?? 0, 0), MAX_SPEND_CENTS);
  const errorRate = input.error_rate ?? 0;
  const runtimeState = input.runtime_state ?? '';
  const activeTasks = input.active_tasks ?? 0;
  const currentTask = input.current_task ?? null;

  // One statement: lock, read the previous state, apply the status rules, write. The wedged
  // self-report is never gated; error-rate inference yields to agents that manage their own status.
  const result = await scope.db.execute<{ previous_status: string; previous_task: string | null; status: string; max_concurrent_tasks: number; has_queued: boolean }>(sql`
    WITH prev AS (
      SELECT id, status, current_task FROM workspaces WHERE id = ${id} AND status <> 'removed' FOR UPDATE
    )
    UPDATE workspaces w SET
      last_heartbeat_at = now(),
      last_error_rate = ${errorRate},
      last_sample_error = ${input.sample_error ?? null},
      active_tasks = ${activeTasks},
      uptime_seconds = ${input.uptime_seconds ?? 0},
      current_task = ${currentTask},
      monthly_spend = CASE WHEN ${spend}::bigint > 0 THEN ${spend}::bigint ELSE w.monthly_spend END,
      runtime_metadata = ${metadata ? JSON.stringify(metadata) : null}::jsonb,
      updated_at = now(),
      status = CASE
        WHEN prev.status = 'online' AND ${runtimeState} = 'wedged' THEN 'degraded'
        WHEN prev.status = 'online' AND NOT ${nativeStatus} AND ${errorRate} >= 0.5 THEN 'degraded'
        WHEN prev.status = 'degraded' AND NOT ${nativeStatus} AND ${errorRate} < 0.1 AND ${runtimeState} = '' THEN 'online'
        WHEN prev.status IN ('offline', 'provisioning', 'awaiting_agent') THEN 'online'
        ELSE prev.status
      END
    FROM prev WHERE w.id = prev.id
    RETURNING prev.status AS previous_status, prev.current_task AS previous_task, w.status, w.max_concurrent_tasks,
      EXISTS (SELECT 1 FROM a2a_queue q WHERE q.workspace_id = w.id AND q.status = 'queued') AS has_queued`);
  const row = result.rows[0];
  if (!row) throw new ApiError(404, 'workspace not found');

  if (row.status !== row.previous_status) {
    if (row.status === 'online') publishEvent(scope, 'WORKSPACE_ONLINE', id, { recovered_from: row.previous_status });
    if (row.status === 'degraded') publishEvent(scope, 'WORKSPACE_DEGRADED', id, { error_rate: errorRate, runtime_state: runtimeState });
  }
  if ((row.previous_task ?? null) !== currentTask) publishEvent(scope, 'TASK_UPDATED', id, { current_task: currentTask, active_tasks: activeTasks });
  publishEvent(scope, 'WORKSPACE_HEARTBEAT', id, { active_tasks: activeTasks, uptime_seconds: input.uptime_seconds ?? 0 });
  // Most heartbeats find an empty queue: only wake the coordinator when there is work.
  if (row.has_queued && activeTasks < (row.max_concurrent_tasks || 1)) drainQueueInBackground(scope, id);
  return c.json({ status: 'ok' as const }, 200);
});

type RuntimeMetadata = { capabilities?: Record<string, boolean>; idle_timeout_seconds?: number };

/** Absent metadata clears it; empty capability maps and non-positive timeouts are dropped. */
function runtimeMetadata(input: z.output<typeof Heartbeat>['runtime_metadata']): RuntimeMetadata | null {
  if (!input) return null;
  const out: RuntimeMetadata = {};
  if (input.capabilities && Object.keys(input.capabilities).length > 0) out.capabilities = { ...input.capabilities };
  if (input.idle_timeout_seconds && input.idle_timeout_seconds > 0) out.idle_timeout_seconds = input.idle_timeout_seconds;
  return Object.keys(out).length > 0 ? out : null;
}

