import { and, desc, eq, sql, type SQL } from 'drizzle-orm';
import { containsText } from '../db/contains-text';
import { memories, workspaces, type MemoryScope } from '../db/schema';
import type { Db } from '../lib/request-scope';
import { communicableWorkspaceIds, liveWorkspace } from '../workspaces/queries';

/** Per workspace: an agent in a loop must not grow the table (and every TEAM/GLOBAL read) without bound. */
export const MAX_MEMORIES_PER_WORKSPACE = 10_000;

/** First key of the two-key advisory locks that serialise one workspace's memory writers. */
const MEMORY_WRITE_LOCK = 0x6d656d; // 'mem'

/** A memory as every read answers it. */
export const memoryView = {
  id: memories.id,
  workspace_id: memories.workspaceId,
  content: memories.content,
  scope: memories.scope,
  namespace: memories.namespace,
  created_at: memories.createdAt,
};

export type NewMemory = { workspaceId: string; content: string; scope: MemoryScope; namespace: string };
export type CommitOutcome = { id: string } | 'not_found' | 'not_root' | 'full';

/**
 * One conditional INSERT decides everything (live writer, root for GLOBAL, under the cap) and
 * says which condition failed. The cap's count is exact under concurrency because writers of one
 * workspace queue on an advisory lock first, and under READ COMMITTED the INSERT, a later
 * statement, sees every row its predecessors committed.
 */
export async function commitMemory(db: Db, m: NewMemory): Promise<CommitOutcome> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${MEMORY_WRITE_LOCK}::int, hashtext(${m.workspaceId}))`);
    const result = await tx.execute<{ root: boolean; id: string | null }>(sql`
      WITH writer AS (
        SELECT ${workspaces.id} AS id, ${workspaces.parentId} IS NULL AS root,
               (SELECT count(*) FROM (SELECT 1 FROM memories WHERE workspace_id = ${m.workspaceId} LIMIT ${MAX_MEMORIES_PER_WORKSPACE}) held)
                 >= ${MAX_MEMORIES_PER_WORKSPACE} AS at_cap
          FROM ${workspaces} WHERE ${workspaces.id} = ${m.workspaceId} AND ${liveWorkspace()}
      ), inserted AS (
        INSERT INTO memories (workspace_id, content, scope, namespace)
        SELECT id, ${m.content}, ${m.scope}, ${m.namespace} FROM writer
         WHERE NOT at_cap AND (root OR ${m.scope} <> 'GLOBAL')
        RETURNING id
      )
      SELECT writer.root, inserted.id FROM writer LEFT JOIN inserted ON true`);
    const [row] = result.rows;
    if (!row) return 'not_found';
    if (row.id) return { id: row.id };
    return !row.root && m.scope === 'GLOBAL' ? 'not_root' : 'full';
  });
}

export type MemoryFilter = { scope?: MemoryScope; q?: string; namespace?: string; limit: number };

/**
 * What `workspaceId` may recall, newest first. LOCAL: its own LOCAL rows. TEAM: the TEAM rows of
 * every workspace the A2A hierarchy rule lets it talk to, its own included. GLOBAL: every live
 * workspace's GLOBAL rows. No scope: its own rows of every scope (the original platform's answer).
 * A removed workspace's memories never show.
 */
export async function recallMemories(db: Db, workspaceId: string, f: MemoryFilter) {
  const filters: SQL[] = [visibleTo(workspaceId, f.scope)];
  if (f.namespace) filters.push(eq(memories.namespace, f.namespace));
  if (f.q) filters.push(containsText(memories.content, f.q));
  return db
    .select(memoryView)
    .from(memories)
    .innerJoin(workspaces, and(eq(workspaces.id, memories.workspaceId), liveWorkspace()))
    .where(and(...filters))
    .orderBy(desc(memories.createdAt), desc(memories.id))
    .limit(f.limit);
}

function visibleTo(workspaceId: string, scope: MemoryScope | undefined): SQL {
  switch (scope) {
    case undefined:
      return eq(memories.workspaceId, workspaceId);
    case 'LOCAL':
      return and(eq(memories.workspaceId, workspaceId), eq(memories.scope, 'LOCAL'))!;
    case 'TEAM':
      return and(eq(memories.scope, 'TEAM'), sql`${memories.workspaceId} IN (${communicableWorkspaceIds(workspaceId)})`)!;
    case 'GLOBAL':
      return eq(memories.scope, 'GLOBAL');
  }
}

/** Edits one of the workspace's own memories; undefined when it has no such memory. */
export async function editMemory(db: Db, workspaceId: string, memoryId: string, patch: { content?: string; namespace?: string }) {
  const [row] = await db
    .update(memories)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(and(eq(memories.id, memoryId), eq(memories.workspaceId, workspaceId)))
    .returning(memoryView);
  return row;
}

/** Deletes one of the workspace's own memories; false when it has no such memory. */
export async function forgetMemory(db: Db, workspaceId: string, memoryId: string): Promise<boolean> {
  const rows = await db
    .delete(memories)
    .where(and(eq(memories.id, memoryId), eq(memories.workspaceId, workspaceId)))
    .returning({ id: memories.id });
  return rows.length > 0;
}
