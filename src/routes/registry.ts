import { createRoute, z } from '@hono/zod-openapi';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { entriesOf, Uuid, WorkspaceRemoved } from '../api/schemas';
import { identifyBearer, resolveCredential } from '../auth/credentials';
import { parseBearer } from '../auth/tokens';
import { assertOwnToken } from '../auth/guards';
import { DELIVERY_MODES, PG_INT_MAX } from '../db/schema';
import { ApiError } from '../errors';
import { publishEvent } from '../events/publish';
import { KiB } from '../lib/body';
import { assertAgentUrl } from '../lib/url-policy';
import { recordHeartbeat, registerAgent } from '../workspaces/registration';
import { drainQueueInBackground } from '../a2a/queue-drain';
import { coordinatorOf } from '../coordinator';
import type { RequestScope } from '../lib/request-scope';
import { livenessTtlSeconds } from '../workspaces/liveness';

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
  responses: { 200: json(Registered, 'Registered'), 410: json(WorkspaceRemoved, 'Removed: re-onboard (`hint`)'), ...errors(400, 401, 404, 413) },
});

registryRoutes.openapi(registerRoute, async (c) => {
  const input = c.req.valid('json');
  const id = input.id;
  const scope = c.var.scope;
  const credential = await resolveCredential(scope, c.req.header('Authorization'));
  const bearer = credential.kind === 'invalid' ? await identifyBearer(c.env, parseBearer(c.req.header('Authorization'))) : undefined;

  const outcome = await registerAgent(scope.db, {
    id,
    credential,
    deadTokenHash: bearer?.kind === 'workspace' ? bearer.hash : undefined,
    url: input.url,
    agentCard: input.agent_card,
    deliveryMode: input.delivery_mode,
    checkUrl: (url) => assertAgentUrl(c.env, url),
  });

  publishEvent(scope, 'WORKSPACE_ONLINE', id, { url: outcome.url ?? null, agent_card: input.agent_card, delivery_mode: outcome.mode });
  noteAlive(scope, id, outcome.runtime);
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
  // Any short word from the agent (the CLI sends "ok"); only `wedged` changes anything.
  runtime_state: z.string().max(64).optional(),
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
  responses: { 200: json(z.object({ status: z.literal('ok'), platform_inbound_secret: z.string().optional() }), 'Recorded'), ...errors(400, 401, 404, 413) },
});

registryRoutes.openapi(heartbeatRoute, async (c) => {
  const input = c.req.valid('json');
  const id = input.workspace_id;
  const scope = c.var.scope;
  assertOwnToken(await resolveCredential(scope, c.req.header('Authorization')), id);

  const metadata = runtimeMetadata(input.runtime_metadata);
  const errorRate = input.error_rate ?? 0;
  const activeTasks = input.active_tasks ?? 0;
  const currentTask = input.current_task ?? null;
  const row = await recordHeartbeat(scope.db, {
    id,
    errorRate,
    sampleError: input.sample_error ?? null,
    activeTasks,
    uptimeSeconds: input.uptime_seconds ?? 0,
    currentTask,
    spendCents: Math.min(Math.max(input.monthly_spend ?? 0, 0), MAX_SPEND_CENTS),
    runtimeState: input.runtime_state || null,
    runtimeMetadata: metadata,
    nativeStatus: metadata?.capabilities?.status_mgmt === true,
  });
  if (!row) throw new ApiError(404, 'workspace not found');

  if (row.status !== row.previous_status) {
    if (row.status === 'online') publishEvent(scope, 'WORKSPACE_ONLINE', id, { recovered_from: row.previous_status });
    if (row.status === 'degraded') publishEvent(scope, 'WORKSPACE_DEGRADED', id, { error_rate: errorRate, wedged: input.runtime_state === 'wedged' });
  }
  if ((row.previous_task ?? null) !== currentTask) publishEvent(scope, 'TASK_UPDATED', id, { current_task: currentTask, active_tasks: activeTasks });
  publishEvent(scope, 'WORKSPACE_HEARTBEAT', id, { active_tasks: activeTasks, uptime_seconds: input.uptime_seconds ?? 0 });
  noteAlive(scope, id, row.runtime);
  // Most heartbeats find an empty queue: only wake the coordinator when there is work.
  if (row.has_queued && activeTasks < (row.max_concurrent_tasks || 1)) drainQueueInBackground(scope, id);
  return c.json({ status: 'ok' as const, ...(row.platform_inbound_secret ? { platform_inbound_secret: row.platform_inbound_secret } : {}) }, 200);
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

/** The agent was heard from: its coordinator's silence deadline moves forward (after the response). */
function noteAlive(scope: RequestScope, id: string, runtime: string): void {
  scope.defer('liveness deadline', () => coordinatorOf(scope.env, id).noteAlive(livenessTtlSeconds(scope.env, runtime)));
}
