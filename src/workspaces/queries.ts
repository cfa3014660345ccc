import { and, eq, ne, sql, type SQL } from 'drizzle-orm';
import { canCommunicate, MAX_ANCESTOR_DEPTH, type ChainRow } from '../a2a/access';
import { workspaces } from '../db/schema';
import type { Db } from '../lib/request-scope';

/** The one definition of a live workspace: every status but `removed` (a tombstone, never revived). */
export function liveWorkspace(): SQL {
  return ne(workspaces.status, 'removed');
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
  const result = await db.execute<ChainRow>(sql`
    WITH RECURSIVE chain(origin, id, parent_id, depth) AS (
      SELECT w.id, w.id, w.parent_id, 0 FROM workspaces w
       WHERE w.id = ANY(${sql.param(ids)}::uuid[]) AND w.status <> 'removed'
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

/** Whether a workspace exists and whether it is a tombstone (undefined: never existed). */
export async function workspaceTombstone(db: Db, workspaceId: string): Promise<{ removed: boolean; removedAt: Date | null } | undefined> {
  const [row] = await db.select({ status: workspaces.status, removedAt: workspaces.removedAt }).from(workspaces).where(eq(workspaces.id, workspaceId));
  return row && { removed: row.status === 'removed', removedAt: row.removedAt };
}
