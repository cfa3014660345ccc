import { and, eq, inArray, ne, sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import { revokeWorkspaceTokens } from '../auth/token-store';
import type { IssuedToken } from '../auth/tokens';
import { canCommunicate, MAX_ANCESTOR_DEPTH, type ChainRow } from '../a2a/access';
import { forgetContexts } from '../a2a/context-cache';
import { ENCRYPTION_VERSION } from '../lib/secret-box';
import { secrets, workspaceAuthTokens, workspaces, type WorkspaceStatus } from '../db/schema';
import type { Db } from '../lib/request-scope';
import { workspaceAdminView, workspaceView } from './views';

/** The one definition of a live workspace: every status but `removed` (a tombstone, never revived). */
export function liveWorkspace(table: { status: AnyPgColumn } = workspaces): SQL {
  return ne(table.status, 'removed');
}

export async function workspaceIsLive(db: Db, id: string): Promise<boolean> {
  const [row] = await db.select({ id: workspaces.id }).from(workspaces).where(and(eq(workspaces.id, id), liveWorkspace()));
  return row !== undefined;
}

/**
 * Each live workspace's ancestor chain (itself at depth 0), bounded like the proxy's walk. The
 * input to `canCommunicate`, for routes that apply the A2A hierarchy rule outside the proxy.
 */
export async function ancestorChains(db: Db, ids: string[]): Promise<ChainRow[]> {
  if (ids.length === 0) return [];
  // drizzle renders an array parameter as a list (`($1, $2)`): `IN`, never `ANY(...::uuid[])`.
  const result = await db.execute<ChainRow>(sql`
    WITH RECURSIVE chain(origin, id, parent_id, depth) AS (
      SELECT w.id, w.id, w.parent_id, 0 FROM workspaces w
       WHERE w.id IN ${ids} AND w.status <> 'removed'
      UNION ALL
      SELECT c.origin, p.id, p.parent_id, c.depth + 1
        FROM chain c JOIN workspaces p ON p.id = c.parent_id
       WHERE c.depth < ${MAX_ANCESTOR_DEPTH}
    )
    SELECT origin, id, parent_id FROM chain ORDER BY origin, depth`);
  return result.rows;
}

/** The A2A hierarchy rule between two live workspaces (false when either is unknown or removed). */
export async function mayCommunicate(db: Db, callerId: string, targetId: string): Promise<boolean> {
  const chains = await ancestorChains(db, [callerId, targetId]);
  const live = (id: string) => chains.some((r) => r.origin === id);
  return live(callerId) && live(targetId) && canCommunicate(callerId, targetId, chains);
}

/**
 * `canCommunicate` in SQL, for many callers at once: one row `(caller, id)` per live workspace
 * `caller` may talk to (itself included), for each live caller among the uuids `callers` selects
 * (an unknown or removed caller has no rows). Same walk as `ancestorChains`: through removed
 * intermediates, at most MAX_ANCESTOR_DEPTH generations up (ancestors) or down (descendants).
 * The one SQL definition of the rule: the single-caller and the batch forms below both wrap it.
 * Tested against `mayCommunicate` pair by pair.
 */
function communicablePairs(callers: SQL): SQL {
  // A union of the rule's four cases rather than one OR'd join: each case stays an index lookup
  // (by parent_id, or by id), however many callers there are.
  return sql`
    WITH RECURSIVE me AS (
      SELECT id AS caller, parent_id FROM workspaces WHERE id IN (${callers}) AND status <> 'removed'
    ), up(caller, id, depth) AS (
      SELECT caller, parent_id, 1 FROM me WHERE parent_id IS NOT NULL
      UNION ALL
      SELECT up.caller, p.parent_id, up.depth + 1 FROM up JOIN workspaces p ON p.id = up.id
       WHERE p.parent_id IS NOT NULL AND up.depth < ${MAX_ANCESTOR_DEPTH}
    ), down(caller, id, depth) AS (
      SELECT caller, caller, 0 FROM me
      UNION ALL
      SELECT down.caller, c.id, down.depth + 1 FROM down JOIN workspaces c ON c.parent_id = down.id
       WHERE down.depth < ${MAX_ANCESTOR_DEPTH}
    ), related(caller, id) AS (
      SELECT me.caller, t.id FROM me JOIN workspaces t ON t.parent_id = me.parent_id
      UNION ALL
      SELECT me.caller, t.id FROM me JOIN workspaces t ON t.parent_id IS NULL AND me.parent_id IS NULL
      UNION ALL
      SELECT caller, id FROM up
      UNION ALL
      SELECT caller, id FROM down
    )
    SELECT DISTINCT r.caller, r.id FROM related r JOIN workspaces t ON t.id = r.id
     WHERE t.status <> 'removed'`;
}

/**
 * The rule as a subquery, for lists that filter by it in one statement: the ids of the live
 * workspaces `callerId` may talk to (itself included; nothing when it is unknown or removed).
 */
export function communicableWorkspaceIds(callerId: string): SQL {
  return sql`SELECT id FROM (${communicablePairs(sql`SELECT ${callerId}::uuid`)}) AS communicable`;
}

/**
 * Everything each of these workspaces' agents may see or reach (itself included), for all of them
 * in ONE statement: the event hub refreshes every subscriber's set at once, inside one Durable
 * Object call's subrequest budget. Lazy (a batch can carry it). Rows are `(caller, id)`; see
 * `reachableSets` for the map. Unknown or removed workspaces have no rows.
 */
export function reachablePairsQuery(db: Db, workspaceIds: string[]) {
  // An array parameter, not drizzle's list rendering: one bind whatever the count.
  return db.execute<{ caller: string; id: string }>(communicablePairs(sql`SELECT unnest(${sql.param(workspaceIds)}::uuid[])`));
}

/** Rows of `reachablePairsQuery` as a set per workspace (every requested one present, empty when it reaches nothing). */
export function reachableSets(workspaceIds: string[], rows: { caller: string; id: string }[]): Map<string, Set<string>> {
  const sets = new Map(workspaceIds.map((id) => [id, new Set<string>()]));
  for (const r of rows) sets.get(r.caller)?.add(r.id);
  return sets;
}

/** Whether a workspace exists and whether it is a tombstone (undefined: never existed). */
export async function workspaceTombstone(db: Db, workspaceId: string): Promise<{ removed: boolean; removedAt: Date | null } | undefined> {
  const [row] = await db.select({ status: workspaces.status, removedAt: workspaces.removedAt }).from(workspaces).where(eq(workspaces.id, workspaceId));
  return row && { removed: row.status === 'removed', removedAt: row.removedAt };
}

/** A new workspace, its sealed secrets and (external ones) its first token, all or nothing. */
export async function insertWorkspace(
  db: Db,
  args: { row: typeof workspaces.$inferInsert; secrets: { key: string; encryptedValue: string }[]; token?: IssuedToken },
): Promise<string> {
  return db.transaction(async (tx) => {
    const [row] = await tx.insert(workspaces).values(args.row).returning({ id: workspaces.id });
    const id = row!.id;
    if (args.secrets.length > 0) await tx.insert(secrets).values(args.secrets.map((s) => ({ workspaceId: id, ...s, encryptionVersion: ENCRYPTION_VERSION })));
    if (args.token) await tx.insert(workspaceAuthTokens).values({ workspaceId: id, tokenHash: args.token.hash, prefix: args.token.prefix });
    return id;
  });
}

export type FamilyRow = { id: string; parent_id: string | null; name: string; runtime: string; instance_id: string | null };

/** The workspace and all its live descendants, parents before children. */
export async function liveFamily(db: Pick<Db, 'execute'>, id: string): Promise<FamilyRow[]> {
  const result = await db.execute<FamilyRow>(sql`
    WITH RECURSIVE family(id, parent_id, name, runtime, instance_id, depth) AS (
      SELECT id, parent_id, name, runtime, instance_id, 0 FROM workspaces WHERE id = ${id} AND status <> 'removed'
      UNION ALL
      SELECT w.id, w.parent_id, w.name, w.runtime, w.instance_id, f.depth + 1
        FROM workspaces w JOIN family f ON w.parent_id = f.id
       WHERE w.status <> 'removed' AND f.depth < 1000
    )
    SELECT id, parent_id, name, runtime, instance_id FROM family ORDER BY depth`);
  return result.rows;
}

export type TreeRemoval = { kind: 'not_found' } | { kind: 'needs_confirmation'; children: FamilyRow[] } | { kind: 'removed'; removed: FamilyRow[] };

/**
 * Tombstones a workspace and (confirmed) its live descendants, revoking their tokens. Under the
 * tree lock every insert under a parent and every move also takes (drizzle/0005), the subtree is
 * read and removed as one: a child created or moved in meanwhile is either seen here or refused
 * by the guard, never left live under a tombstone. Of concurrent deletes exactly one finds the
 * workspace live; the others get `not_found`.
 */
export async function removeWorkspaceTree(db: Db, root: string, opts: { confirmed: boolean }): Promise<TreeRemoval> {
  const outcome = await db.transaction(async (tx): Promise<TreeRemoval> => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('workspaces_parent_acyclic'))`);
    const family = await liveFamily(tx, root);
    if (family.length === 0) return { kind: 'not_found' };
    const children = family.filter((w) => w.parent_id === root && w.id !== root);
    if (children.length > 0 && !opts.confirmed) return { kind: 'needs_confirmation', children };
    const ids = family.map((w) => w.id);
    await tx
      .update(workspaces)
      .set({ status: 'removed', removedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(inArray(workspaces.id, ids), liveWorkspace()));
    await revokeWorkspaceTokens(tx, ids);
    return { kind: 'removed', removed: family };
  });
  if (outcome.kind === 'removed') forgetContexts({ workspaceIds: outcome.removed.map((w) => w.id) });
  return outcome;
}

/** Whom an agent's message to its user comes from, and whether it may send one (live workspaces only). */
export async function userMessagingOf(db: Db, workspaceId: string): Promise<{ name: string; talkToUserEnabled: boolean } | undefined> {
  const [row] = await db
    .select({ name: workspaces.name, talkToUserEnabled: workspaces.talkToUserEnabled })
    .from(workspaces)
    .where(and(eq(workspaces.id, workspaceId), liveWorkspace()));
  return row;
}

/** A workspace's status, removed ones included (undefined: never existed). */
export async function workspaceStatus(db: Db, workspaceId: string): Promise<WorkspaceStatus | undefined> {
  const [row] = await db.select({ status: workspaces.status }).from(workspaces).where(eq(workspaces.id, workspaceId));
  return row?.status;
}

/** Every live workspace with the operator-only fields, oldest first. */
export function listWorkspaces(db: Db) {
  return db.select(workspaceAdminView).from(workspaces).where(liveWorkspace()).orderBy(workspaces.createdAt);
}

/** One live workspace as any authorised reader may see it. */
export async function readWorkspace(db: Db, id: string) {
  const [row] = await db.select(workspaceView).from(workspaces).where(and(eq(workspaces.id, id), liveWorkspace()));
  return row;
}

/** Updates the given fields of a live workspace (undefined ones are left alone); false: none such. */
export async function updateWorkspace(db: Db, id: string, fields: Partial<typeof workspaces.$inferInsert>): Promise<boolean> {
  const rows = await db
    .update(workspaces)
    .set({ ...fields, updatedAt: sql`now()` })
    .where(and(eq(workspaces.id, id), liveWorkspace()))
    .returning({ id: workspaces.id });
  // Name, runtime and parent are all in the proxy's context (a move changes every descendant's chain).
  forgetContexts({ workspaceIds: [id] });
  return rows.length > 0;
}
