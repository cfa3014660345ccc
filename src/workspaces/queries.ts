import { and, eq, ne, type SQL } from 'drizzle-orm';
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
