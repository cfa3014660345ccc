import { and, count, eq, sql } from 'drizzle-orm';
import { a2aQueue } from '../db/schema';
import type { Db } from '../lib/request-scope';
import type { JsonObject } from './normalize';

export const QUEUE_PRIORITY_TASK = 50;
export const MAX_QUEUE_ATTEMPTS = 5;
const MAX_TTL_SECONDS = 30 * 86_400;
// Longest dispatch (30 min agent ceiling) plus slack.
const STALE_DISPATCH_SECONDS = 35 * 60;

/**
 * `params.expires_in_seconds`: only a positive integer sets a TTL. Absent, zero, negative,
 * fractional or wrongly typed values mean "no expiry" rather than an error, so an old client
 * that sends junk keeps today's behaviour.
 */
export function extractExpiresInSeconds(payload: unknown): number {
  const params = (payload as { params?: unknown } | null)?.params;
  if (!params || typeof params !== 'object') return 0;
  const value = (params as Record<string, unknown>).expires_in_seconds;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) return 0;
  return Math.min(value, MAX_TTL_SECONDS);
}

function messageField(payload: JsonObject, path: string[]): string | null {
  let node: unknown = payload;
  for (const key of path) {
    if (!node || typeof node !== 'object') return null;
    node = (node as Record<string, unknown>)[key];
  }
  return typeof node === 'string' && node.length > 0 && node.length <= 256 ? node : null;
}

export async function enqueue(
  db: Db,
  item: { workspaceId: string; callerId: string | null; method: string; payload: JsonObject },
): Promise<{ id: string; depth: number }> {
  const ttl = extractExpiresInSeconds(item.payload);
  const idempotencyKey = messageField(item.payload, ['params', 'message', 'messageId']);
  const inserted = await db
    .insert(a2aQueue)
    .values({
      workspaceId: item.workspaceId,
      callerId: item.callerId,
      priority: QUEUE_PRIORITY_TASK,
      method: item.method || null,
      body: item.payload,
      idempotencyKey,
      delegationId: messageField(item.payload, ['params', 'message', 'metadata', 'delegation_id']),
      expiresAt: ttl > 0 ? sql`now() + make_interval(secs => ${ttl})` : null,
    })
    .onConflictDoNothing()
    .returning({ id: a2aQueue.id });
  let id = inserted[0]?.id;
  if (!id && idempotencyKey) {
    // Same messageId already pending: the retry is the same message, hand back its id.
    const [existing] = await db
      .select({ id: a2aQueue.id })
      .from(a2aQueue)
      .where(and(eq(a2aQueue.workspaceId, item.workspaceId), eq(a2aQueue.idempotencyKey, idempotencyKey), sql`${a2aQueue.status} IN ('queued', 'dispatched')`));
    id = existing?.id;
  }
  if (!id) throw new Error('enqueue returned no row');
  const [depth] = await db.select({ n: count() }).from(a2aQueue).where(and(eq(a2aQueue.workspaceId, item.workspaceId), eq(a2aQueue.status, 'queued')));
  return { id, depth: depth?.n ?? 0 };
}

export type QueueItem = { id: string; caller_id: string | null; method: string | null; body: JsonObject; attempts: number; delegation_id: string | null };

/**
 * Claims the next live item: highest priority, oldest first, never an expired one. `skip` lists
 * items a drain run already tried: a failed item goes back to `queued`, and without it the same
 * run would claim it again at once and spend all its attempts in one go.
 */
export async function claimNext(db: Db, workspaceId: string, skip: readonly string[] = []): Promise<QueueItem | null> {
  const result = await db.execute<QueueItem>(sql`
    UPDATE a2a_queue SET status = 'dispatched', dispatched_at = now(), attempts = attempts + 1, updated_at = now()
     WHERE id = (
       SELECT id FROM a2a_queue
        WHERE workspace_id = ${workspaceId} AND status = 'queued' AND (expires_at IS NULL OR expires_at > now())
          AND NOT (id = ANY(${sql.param([...skip])}::uuid[]))
        ORDER BY priority DESC, enqueued_at ASC
        FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING id, caller_id, method, body, attempts, delegation_id`);
  return result.rows[0] ?? null;
}

export async function markCompleted(db: Db, id: string, status: number, body: unknown): Promise<void> {
  await db
    .update(a2aQueue)
    .set({ status: 'completed', completedAt: sql`now()`, responseStatus: status, responseBody: body ?? null, lastError: null, updatedAt: sql`now()` })
    .where(eq(a2aQueue.id, id));
}

/**
 * Back to the queue for another try, or `failed` once the attempts are spent (then true). `reason`
 * is a fixed text.
 */
export async function markFailed(db: Db, id: string, reason: string): Promise<boolean> {
  const [row] = await db
    .update(a2aQueue)
    .set({
      status: sql`CASE WHEN ${a2aQueue.attempts} >= ${MAX_QUEUE_ATTEMPTS} THEN 'failed' ELSE 'queued' END`,
      lastError: reason,
      dispatchedAt: null,
      updatedAt: sql`now()`,
    })
    .where(eq(a2aQueue.id, id))
    .returning({ status: a2aQueue.status });
  return row?.status === 'failed';
}

/**
 * Back to the queue with the claim's attempt given back: for a delivery the agent turned away
 * before doing any work (it dropped the connection), which says nothing about the item. `reason`
 * is a fixed text.
 */
export async function releaseUncounted(db: Db, id: string, reason: string): Promise<void> {
  await db
    .update(a2aQueue)
    .set({ status: 'queued', attempts: sql`greatest(${a2aQueue.attempts} - 1, 0)`, lastError: reason, dispatchedAt: null, updatedAt: sql`now()` })
    .where(eq(a2aQueue.id, id));
}

/**
 * At-least-once: an item claimed by a drain that died (evicted coordinator, crashed isolate) goes
 * back to the queue once it has been in flight longer than any dispatch may last.
 */
export async function requeueStaleDispatches(db: Db): Promise<number> {
  const rows = await db
    .update(a2aQueue)
    .set({ status: 'queued', dispatchedAt: null, lastError: 'dispatch interrupted', updatedAt: sql`now()` })
    .where(and(eq(a2aQueue.status, 'dispatched'), sql`${a2aQueue.dispatchedAt} < now() - make_interval(secs => ${STALE_DISPATCH_SECONDS})`))
    .returning({ id: a2aQueue.id });
  return rows.length;
}
