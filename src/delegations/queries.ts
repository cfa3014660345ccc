import { and, desc, eq, inArray, ne, notInArray, or, sql, type SQL } from 'drizzle-orm';
import { delegations, type DelegationStatus } from '../db/schema';
import type { Db } from '../lib/request-scope';

/** Statuses a delegation never leaves: every write below is conditional on not being in one. */
export const TERMINAL_STATUSES = ['completed', 'failed'] as const satisfies readonly DelegationStatus[];

export const isTerminal = (status: DelegationStatus) => (TERMINAL_STATUSES as readonly string[]).includes(status);

const SUMMARY_CHARS = 200;

/** A delegation as every reader sees it (the route adds the wire-only keys). */
const VIEW = {
  delegation_id: delegations.id,
  source_id: delegations.sourceId,
  target_id: delegations.targetId,
  // left() counts characters, so a summary never ends in half a surrogate pair.
  summary: sql<string>`left(${delegations.task}, ${sql.raw(String(SUMMARY_CHARS))})`,
  status: delegations.status,
  response_preview: delegations.responsePreview,
  error: delegations.error,
  created_at: delegations.createdAt,
  updated_at: delegations.updatedAt,
};

export type DelegationRow = {
  delegation_id: string;
  source_id: string;
  target_id: string;
  summary: string;
  status: DelegationStatus;
  response_preview: string | null;
  error: string | null;
  created_at: Date;
  updated_at: Date;
};

/** What a dispatcher needs of a claimed delegation. */
export type ClaimedDelegation = { id: string; source_id: string; target_id: string; task: string };

/** A state change; absent texts keep what the row has. */
export type Settlement = { status: DelegationStatus; responsePreview?: string | null; error?: string | null; queueId?: string | null };

/**
 * A new delegation, or the live one holding the same idempotency key (`created: false`). One
 * statement decides: the partial unique index (source, key) where status <> 'failed' makes
 * concurrent identical requests insert exactly one row. A holder that fails between our insert
 * and our read frees the key, so the insert is tried again.
 *
 * A key is scoped to its target as well (stored as `<target>:<key>`): the SDK derives its key
 * from the task and the minute alone, and the same task handed to two peers in one minute is two
 * delegations, not one answered with the other peer's.
 */
export async function createDelegation(
  db: Db,
  d: { sourceId: string; targetId: string; task: string; idempotencyKey: string | null },
): Promise<{ row: DelegationRow; created: boolean }> {
  const key = d.idempotencyKey === null ? null : `${d.targetId}:${d.idempotencyKey}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    const [inserted] = await db
      .insert(delegations)
      .values({ sourceId: d.sourceId, targetId: d.targetId, task: d.task, idempotencyKey: key, status: 'pending' })
      .onConflictDoNothing()
      .returning(VIEW);
    if (inserted) return { row: inserted as DelegationRow, created: true };
    if (key === null) break;
    const [existing] = await db
      .select(VIEW)
      .from(delegations)
      .where(and(eq(delegations.sourceId, d.sourceId), eq(delegations.idempotencyKey, key), ne(delegations.status, 'failed')));
    if (existing) return { row: existing as DelegationRow, created: false };
  }
  throw new Error('delegation insert returned no row');
}

/**
 * A delegation the source performed itself, stored as `dispatched` under the id it chose.
 * Idempotent on that id for the same source; `undefined` when the id belongs to another source.
 */
export async function recordDelegation(db: Db, d: { id: string; sourceId: string; targetId: string; task: string }): Promise<DelegationRow | undefined> {
  const [inserted] = await db
    .insert(delegations)
    .values({ id: d.id, sourceId: d.sourceId, targetId: d.targetId, task: d.task, status: 'dispatched' })
    .onConflictDoNothing()
    .returning(VIEW);
  if (inserted) return inserted as DelegationRow;
  const [existing] = await db.select(VIEW).from(delegations).where(and(eq(delegations.id, d.id), eq(delegations.sourceId, d.sourceId)));
  return existing as DelegationRow | undefined;
}

/** Delegations the workspace made or received, newest first. */
export async function listDelegations(db: Db, workspaceId: string, limit: number): Promise<DelegationRow[]> {
  const rows = await db
    .select(VIEW)
    .from(delegations)
    .where(party(workspaceId))
    .orderBy(desc(delegations.createdAt), desc(delegations.id))
    .limit(limit);
  return rows as DelegationRow[];
}

/** One delegation, if the workspace is a party to it. */
export async function findDelegation(db: Db, workspaceId: string, delegationId: string): Promise<DelegationRow | undefined> {
  const [row] = await db
    .select(VIEW)
    .from(delegations)
    .where(and(eq(delegations.id, delegationId), party(workspaceId)));
  return row as DelegationRow | undefined;
}

/** pending → dispatched, for the one dispatcher of this delegation; undefined when it is not pending. */
export async function claimDelegation(db: Db, id: string): Promise<ClaimedDelegation | undefined> {
  const [row] = await db
    .update(delegations)
    .set({ status: 'dispatched', updatedAt: sql`now()` })
    .where(and(eq(delegations.id, id), eq(delegations.status, 'pending')))
    .returning({ id: delegations.id, source_id: delegations.sourceId, target_id: delegations.targetId, task: delegations.task });
  return row;
}

/**
 * Applies a settlement unless the delegation is already terminal (a terminal delegation stays
 * terminal, whoever writes second). `match` narrows who may settle it (its source, its source and
 * target, or only from some statuses). Returns the updated row, or undefined when nothing changed.
 */
export async function settleDelegation(
  db: Db,
  id: string,
  s: Settlement,
  match: { sourceId?: string; targetId?: string; from?: DelegationStatus[] } = {},
): Promise<DelegationRow | undefined> {
  const filters: SQL[] = [eq(delegations.id, id), notInArray(delegations.status, [...TERMINAL_STATUSES])];
  if (match.sourceId) filters.push(eq(delegations.sourceId, match.sourceId));
  if (match.targetId) filters.push(eq(delegations.targetId, match.targetId));
  if (match.from) filters.push(inArray(delegations.status, match.from));
  const [row] = await db
    .update(delegations)
    .set({
      status: s.status,
      ...(s.responsePreview != null ? { responsePreview: s.responsePreview } : {}),
      ...(s.error != null ? { error: s.error } : {}),
      ...(s.queueId != null ? { queueId: s.queueId } : {}),
      ...(isTerminal(s.status) ? { completedAt: sql`now()` } : {}),
      updatedAt: sql`now()`,
    })
    .where(and(...filters))
    .returning(VIEW);
  return row as DelegationRow | undefined;
}

function party(workspaceId: string): SQL {
  return or(eq(delegations.sourceId, workspaceId), eq(delegations.targetId, workspaceId))!;
}
