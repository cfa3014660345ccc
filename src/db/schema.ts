import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  date,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  type AnyPgColumn,
} from 'drizzle-orm/pg-core';

// `hibernating` and `awaiting_agent` are written by the seed platform even though its enum
// forgot them; all ten are valid here so no writer can hit a constraint error mid-transition.
export const WORKSPACE_STATUSES = [
  'provisioning',
  'online',
  'degraded',
  'offline',
  'paused',
  'failed',
  'removed',
  'hibernating',
  'hibernated',
  'awaiting_agent',
] as const;
export type WorkspaceStatus = (typeof WORKSPACE_STATUSES)[number];

export const DELIVERY_MODES = ['push', 'poll'] as const;
export type DeliveryMode = (typeof DELIVERY_MODES)[number];

export const WORKSPACE_ACCESS = ['none', 'read_only', 'read_write'] as const;

export const ACTIVITY_TYPES = [
  'a2a_send',
  'a2a_receive',
  'task_update',
  'agent_log',
  'skill_promotion',
  'memory_write',
  'error',
] as const;
export type ActivityType = (typeof ACTIVITY_TYPES)[number];

/**
 * `issued`: the agent's own identity token, handed over by the platform (create, first register,
 * provision); a workspace holds at most one live one, enforced by a unique index. `minted`: extra
 * tokens an operator asks for.
 */
export const TOKEN_ORIGINS = ['issued', 'minted'] as const;
export type TokenOrigin = (typeof TOKEN_ORIGINS)[number];

export const DELEGATION_STATUSES = ['pending', 'dispatched', 'queued', 'completed', 'failed'] as const;
export type DelegationStatus = (typeof DELEGATION_STATUSES)[number];

export const MEMORY_SCOPES = ['LOCAL', 'TEAM', 'GLOBAL'] as const;
export type MemoryScope = (typeof MEMORY_SCOPES)[number];

export const QUEUE_STATUSES = ['queued', 'dispatched', 'completed', 'failed', 'dropped', 'expired'] as const;
export type QueueStatus = (typeof QUEUE_STATUSES)[number];

/** Largest value of a Postgres `integer` column: inputs bound for one are validated against it. */
export const PG_INT_MAX = 2_147_483_647;

const inList = (values: readonly string[]) => sql.raw(values.map((v) => `'${v}'`).join(', '));
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const workspaces = pgTable(
  'workspaces',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    role: text('role'),
    parentId: uuid('parent_id').references((): AnyPgColumn => workspaces.id, { onDelete: 'set null' }),
    runtime: text('runtime').notNull().default('langgraph'),
    model: text('model'),
    tier: integer('tier').notNull().default(3),
    status: text('status').$type<WorkspaceStatus>().notNull().default('provisioning'),
    url: text('url'),
    deliveryMode: text('delivery_mode').$type<DeliveryMode>().notNull().default('push'),
    agentCard: jsonb('agent_card'),
    runtimeMetadata: jsonb('runtime_metadata'),
    platformInboundSecret: text('platform_inbound_secret'),
    lastHeartbeatAt: ts('last_heartbeat_at'),
    lastErrorRate: doublePrecision('last_error_rate').notNull().default(0),
    lastSampleError: text('last_sample_error'),
    activeTasks: integer('active_tasks').notNull().default(0),
    maxConcurrentTasks: integer('max_concurrent_tasks').notNull().default(1),
    uptimeSeconds: integer('uptime_seconds').notNull().default(0),
    currentTask: text('current_task'),
    budgetLimit: bigint('budget_limit', { mode: 'number' }),
    monthlySpend: bigint('monthly_spend', { mode: 'number' }).notNull().default(0),
    workspaceDir: text('workspace_dir'),
    workspaceAccess: text('workspace_access').notNull().default('none'),
    lastOutboundAt: ts('last_outbound_at'),
    /** The agent's own word on its state (heartbeat `runtime_state`); only `wedged` acts. */
    runtimeState: text('runtime_state'),
    /** Whether the agent may message its canvas user (`POST /workspaces/:id/notify`). */
    talkToUserEnabled: boolean('talk_to_user_enabled').notNull().default(true),
    /** When the workspace became a tombstone (`removed`); shown in the 410 re-onboarding answer. */
    removedAt: ts('removed_at'),
    /** The EC2 instance running the agent (SaaS); null for containers and external agents. */
    instanceId: text('instance_id'),
    /** When the current provisioning began: the provision-timeout deadline counts from here. */
    provisioningSince: ts('provisioning_since'),
    /** Idle minutes after which the agent is hibernated; 0 = never. */
    hibernationIdleMinutes: integer('hibernation_idle_minutes').notNull().default(0),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    check('workspaces_hibernation_idle_minutes_check', sql`${t.hibernationIdleMinutes} >= 0`),
    check('workspaces_status_check', sql`${t.status} IN (${inList(WORKSPACE_STATUSES)})`),
    check('workspaces_delivery_mode_check', sql`${t.deliveryMode} IN (${inList(DELIVERY_MODES)})`),
    check('workspaces_workspace_access_check', sql`${t.workspaceAccess} IN (${inList(WORKSPACE_ACCESS)})`),
    check('workspaces_monthly_spend_check', sql`${t.monthlySpend} >= 0`),
    index('workspaces_parent_id_idx').on(t.parentId),
    index('workspaces_status_idx').on(t.status),
  ],
);

// Only the SHA-256 of a token is stored; the plaintext is shown once at issue time.
export const workspaceAuthTokens = pgTable(
  'workspace_auth_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    prefix: text('prefix').notNull(),
    origin: text('origin').$type<TokenOrigin>().notNull().default('issued'),
    /** Free text an operator gave a minted token (e.g. "claude-channel"), for display. */
    label: text('label'),
    createdAt: ts('created_at').notNull().defaultNow(),
    lastUsedAt: ts('last_used_at'),
    revokedAt: ts('revoked_at'),
  },
  (t) => [
    check('workspace_auth_tokens_origin_check', sql`${t.origin} IN (${inList(TOKEN_ORIGINS)})`),
    uniqueIndex('workspace_auth_tokens_hash_idx').on(t.tokenHash),
    index('workspace_auth_tokens_live_idx').on(t.workspaceId).where(sql`${t.revokedAt} IS NULL`),
    // Issue-once as a structure, not a read-then-write: racing first registrations cannot both
    // insert a live issued token, whatever the isolation level or code path.
    uniqueIndex('workspace_auth_tokens_one_issued_idx').on(t.workspaceId).where(sql`${t.revokedAt} IS NULL AND ${t.origin} = 'issued'`),
  ],
);

export const orgApiTokens = pgTable(
  'org_api_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tokenHash: text('token_hash').notNull(),
    prefix: text('prefix').notNull(),
    name: text('name'),
    createdBy: text('created_by').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
    lastUsedAt: ts('last_used_at'),
    revokedAt: ts('revoked_at'),
  },
  (t) => [uniqueIndex('org_api_tokens_hash_idx').on(t.tokenHash)],
);

export const activityLogs = pgTable(
  'activity_logs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // Insertion order for the since_id cursor: timestamps tie, a sequence does not.
    seq: bigint('seq', { mode: 'number' }).generatedAlwaysAsIdentity(),
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    activityType: text('activity_type').$type<ActivityType>().notNull(),
    sourceId: uuid('source_id'),
    targetId: uuid('target_id'),
    method: text('method'),
    summary: text('summary'),
    requestBody: jsonb('request_body'),
    responseBody: jsonb('response_body'),
    toolTrace: jsonb('tool_trace'),
    status: text('status').notNull().default('ok'),
    errorDetail: text('error_detail'),
    durationMs: integer('duration_ms'),
    createdAt: ts('created_at').notNull().default(sql`clock_timestamp()`),
  },
  (t) => [
    check('activity_logs_type_check', sql`${t.activityType} IN (${inList(ACTIVITY_TYPES)})`),
    check('activity_logs_status_check', sql`${t.status} IN ('ok', 'error')`),
    index('activity_logs_ws_seq_idx').on(t.workspaceId, t.seq),
    index('activity_logs_ws_created_idx').on(t.workspaceId, t.createdAt.desc()),
    index('activity_logs_ws_type_created_idx').on(t.workspaceId, t.activityType, t.createdAt.desc()),
  ],
);

// Values are AES-256-GCM ciphertext (base64 of iv || ciphertext); version 1 = encrypted.
export const secrets = pgTable(
  'secrets',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    encryptedValue: text('encrypted_value').notNull(),
    encryptionVersion: smallint('encryption_version').notNull().default(1),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [uniqueIndex('secrets_workspace_key_idx').on(t.workspaceId, t.key)],
);

export const globalSecrets = pgTable(
  'global_secrets',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    key: text('key').notNull(),
    encryptedValue: text('encrypted_value').notNull(),
    encryptionVersion: smallint('encryption_version').notNull().default(1),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [uniqueIndex('global_secrets_key_idx').on(t.key)],
);

// Durable record of lifecycle events (WORKSPACE_ONLINE, WORKSPACE_OFFLINE, …); chatty events
// such as heartbeats and ACTIVITY_LOGGED are broadcast only.
export const structureEvents = pgTable(
  'structure_events',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    eventType: text('event_type').notNull(),
    workspaceId: uuid('workspace_id'),
    payload: jsonb('payload'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [index('structure_events_ws_created_idx').on(t.workspaceId, t.createdAt)],
);

// Busy-agent spool: requests the agent could not take right now, drained when its heartbeat
// reports spare capacity. Delivery is at-least-once; attempts are counted and capped.
export const a2aQueue = pgTable(
  'a2a_queue',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    callerId: uuid('caller_id'),
    priority: smallint('priority').notNull().default(50),
    method: text('method'),
    body: jsonb('body').notNull(),
    idempotencyKey: text('idempotency_key'),
    delegationId: text('delegation_id'),
    status: text('status').$type<QueueStatus>().notNull().default('queued'),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    responseStatus: integer('response_status'),
    responseBody: jsonb('response_body'),
    expiresAt: ts('expires_at'),
    enqueuedAt: ts('enqueued_at').notNull().defaultNow(),
    dispatchedAt: ts('dispatched_at'),
    completedAt: ts('completed_at'),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    check('a2a_queue_status_check', sql`${t.status} IN (${inList(QUEUE_STATUSES)})`),
    // A retried send (same messageId) while the first is still pending is the same message.
    uniqueIndex('a2a_queue_idempotency_idx')
      .on(t.workspaceId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} IS NOT NULL AND ${t.status} IN ('queued', 'dispatched')`),
    index('a2a_queue_dispatch_idx').on(t.workspaceId, t.priority.desc(), t.enqueuedAt).where(sql`${t.status} = 'queued'`),
  ],
);

// One row per delegation (a task one workspace hands another), carrying its latest state.
export const delegations = pgTable(
  'delegations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    sourceId: uuid('source_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    targetId: uuid('target_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    task: text('task').notNull(),
    status: text('status').$type<DelegationStatus>().notNull().default('pending'),
    idempotencyKey: text('idempotency_key'),
    responsePreview: text('response_preview'),
    error: text('error'),
    /** The busy-queue item carrying this delegation, when the target was busy. */
    queueId: uuid('queue_id'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    completedAt: ts('completed_at'),
  },
  (t) => [
    check('delegations_status_check', sql`${t.status} IN (${inList(DELEGATION_STATUSES)})`),
    check('delegations_not_self_check', sql`${t.sourceId} <> ${t.targetId}`),
    // A retried delegate (same key) while the first has not failed is the same delegation.
    uniqueIndex('delegations_idempotency_idx')
      .on(t.sourceId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} IS NOT NULL AND ${t.status} <> 'failed'`),
    index('delegations_source_created_idx').on(t.sourceId, t.createdAt.desc()),
    index('delegations_target_idx').on(t.targetId),
  ],
);

// Agent memories: LOCAL (the workspace), TEAM (its family), GLOBAL (everyone; root writers only).
export const memories = pgTable(
  'memories',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    content: text('content').notNull(),
    scope: text('scope').$type<MemoryScope>().notNull(),
    namespace: text('namespace').notNull().default('general'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    check('memories_scope_check', sql`${t.scope} IN (${inList(MEMORY_SCOPES)})`),
    index('memories_ws_created_idx').on(t.workspaceId, t.createdAt.desc()),
    index('memories_scope_idx').on(t.scope, t.createdAt.desc()),
  ],
);

// Token usage reported in A2A responses, summed per workspace and day.
export const workspaceTokenUsage = pgTable(
  'workspace_token_usage',
  {
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    periodStart: date('period_start', { mode: 'string' }).notNull(),
    inputTokens: bigint('input_tokens', { mode: 'number' }).notNull().default(0),
    outputTokens: bigint('output_tokens', { mode: 'number' }).notNull().default(0),
    callCount: bigint('call_count', { mode: 'number' }).notNull().default(0),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.workspaceId, t.periodStart] }),
    check('workspace_token_usage_nonnegative_check', sql`${t.inputTokens} >= 0 AND ${t.outputTokens} >= 0 AND ${t.callCount} >= 0`),
  ],
);
