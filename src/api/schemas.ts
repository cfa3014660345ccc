import { z } from '@hono/zod-openapi';
import { ACTIVITY_TYPES, DELIVERY_MODES, QUEUE_STATUSES, WORKSPACE_ACCESS, WORKSPACE_STATUSES } from '../db/schema';

// Shared pieces of the route contracts. Timestamps are ISO strings on the wire.

const lowercase = (v: string) => v.toLowerCase();

/** Any 8-4-4-4-12 hex id Postgres accepts; version bits are not ours to police. */
export const Uuid = z.guid().transform(lowercase).openapi({ type: 'string', format: 'uuid' });

export const WorkspaceIdParam = z.object({
  id: z
    .guid({ message: 'invalid workspace ID' })
    .transform(lowercase)
    .openapi({ param: { name: 'id', in: 'path' }, type: 'string', format: 'uuid' }),
});

/** Agents name themselves in `X-Workspace-ID`; it is only a hint that must agree with the bearer. */
export const CallerHeaders = z.object({
  'x-workspace-id': z.string().max(128).optional().openapi({ description: 'The calling workspace; must agree with the bearer' }),
  'x-source-workspace-id': z.string().max(128).optional().openapi({ description: 'Same as X-Workspace-ID (the channel plugin and the SDK send this one)' }),
});

/**
 * Free text shown in a UI (labels, file names): no C0 or C1 controls, DEL, or the Unicode line and
 * paragraph separators, so no line breaks of any kind either.
 */
export const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$/;

export const Timestamp = z.string().openapi({ format: 'date-time' });
const NullableTimestamp = Timestamp.nullable();

export const Workspace = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.string().nullable(),
    parent_id: z.string().nullable(),
    runtime: z.string(),
    model: z.string().nullable(),
    tier: z.number().int(),
    status: z.enum(WORKSPACE_STATUSES),
    url: z.string().nullable(),
    delivery_mode: z.enum(DELIVERY_MODES),
    agent_card: z.unknown(),
    active_tasks: z.number().int(),
    max_concurrent_tasks: z.number().int(),
    last_error_rate: z.number(),
    uptime_seconds: z.number().int(),
    last_heartbeat_at: NullableTimestamp,
    last_outbound_at: NullableTimestamp,
    workspace_access: z.enum(WORKSPACE_ACCESS),
    runtime_state: z.string().nullable(),
    talk_to_user_enabled: z.boolean(),
    hibernation_idle_minutes: z.number().int(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .openapi('Workspace');

export const WorkspaceRemoved = z
  .object({ error: z.literal('workspace removed'), id: z.string(), removed_at: NullableTimestamp, hint: z.string() })
  .openapi('WorkspaceRemoved');

export const WorkspaceAdmin = Workspace.extend({
  budget_limit: z.number().int().nullable(),
  monthly_spend: z.number().int(),
  current_task: z.string().nullable(),
  last_sample_error: z.string().nullable(),
  workspace_dir: z.string().nullable(),
}).openapi('WorkspaceAdmin');

export const ActivityRow = z
  .object({
    id: z.string(),
    workspace_id: z.string(),
    activity_type: z.enum(ACTIVITY_TYPES),
    source_id: z.string().nullable(),
    target_id: z.string().nullable(),
    method: z.string().nullable(),
    summary: z.string().nullable(),
    request_body: z.unknown().optional(),
    response_body: z.unknown().optional(),
    tool_trace: z.unknown().optional(),
    status: z.enum(['ok', 'error']),
    error_detail: z.string().nullable(),
    duration_ms: z.number().int().nullable(),
    created_at: Timestamp,
    data: z
      .object({
        source: z.enum(['canvas_user', 'peer_agent']),
        source_id: z.string(),
        text: z.string(),
        peer_name: z.string().optional(),
        peer_role: z.string().optional(),
      })
      .optional()
      .openapi({ description: 'Inbound A2A rows only: the message as the Python SDK reads it' }),
  })
  .openapi('ActivityRow');

export const QueueItem = z
  .object({
    queue_id: z.string(),
    workspace_id: z.string(),
    caller_id: z.string().nullable(),
    status: z.enum(QUEUE_STATUSES),
    method: z.string().nullable(),
    priority: z.number().int(),
    attempts: z.number().int(),
    last_error: z.string().nullable(),
    enqueued_at: Timestamp,
    dispatched_at: NullableTimestamp,
    completed_at: NullableTimestamp,
    expires_at: NullableTimestamp,
    expired: z.boolean(),
    response_status: z.number().int().nullable().optional(),
    response_body: z.unknown().optional(),
  })
  .openapi('QueueItem');

/**
 * A JSON object whose keys are the caller's own (secret names, capability names). A plain
 * `z.record` reports a bad entry at a path ending in its key, and that key is input: it would come
 * back in the 400. This reports at the record itself, with a fixed text, and bounds the entry count.
 */
export function entriesOf<V extends z.ZodType>(key: z.ZodType<string>, value: V, rule: string, maxEntries = 256) {
  return z
    .custom<Record<string, z.output<V>>>(
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        !Array.isArray(v) &&
        Object.keys(v).length <= maxEntries &&
        Object.entries(v).every(([k, x]) => key.safeParse(k).success && value.safeParse(x).success),
      { message: `${rule} (at most ${maxEntries} entries)` },
    )
    .openapi({ type: 'object', description: rule, maxProperties: maxEntries });
}

/**
 * A positive integer query parameter, clamped to `max`: a large value asks for "as many as
 * allowed", while zero, a sign, a fraction or a typo is refused (never silently ignored).
 */
export function clampedPositiveInt(name: string, max: number) {
  return z
    .string()
    .regex(/^[1-9][0-9]{0,15}$/, `${name} must be a positive integer`)
    .transform((v) => Math.min(Number(v), max))
    .openapi({ type: 'integer', minimum: 1, maximum: max });
}
