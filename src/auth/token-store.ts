import { and, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import { workspaceAuthTokens, workspaces } from '../db/schema';
import type { Db } from '../lib/request-scope';
import { issueToken } from './tokens';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** The one definition of a live workspace token. */
export function liveWorkspaceToken(): SQL {
  return isNull(workspaceAuthTokens.revokedAt);
}

/**
 * The bootstrap rule: until a workspace holds a live token, registering is how it gets one. One
 * statement decides and writes: the NOT EXISTS sees tokens committed before it started, and the
 * unique index on live `issued` tokens turns any insert that raced past it into a no-op. Returns
 * the plaintext for the one winner, undefined for everyone else.
 */
export async function issueFirstToken(db: Db | Tx, workspaceId: string): Promise<string | undefined> {
  const token = await issueToken('workspace');
  const inserted = await db.execute<{ id: string }>(sql`
    INSERT INTO ${workspaceAuthTokens} (workspace_id, token_hash, prefix, origin)
    SELECT ${workspaceId}::uuid, ${token.hash}, ${token.prefix}, 'issued'
     WHERE NOT EXISTS (SELECT 1 FROM ${workspaceAuthTokens} WHERE workspace_id = ${workspaceId}::uuid AND revoked_at IS NULL)
    ON CONFLICT (workspace_id) WHERE revoked_at IS NULL AND origin = 'issued' DO NOTHING
    RETURNING id`);
  return inserted.rows.length > 0 ? token.plaintext : undefined;
}

/** Revokes every live token of the given workspaces (delete, re-provision). */
export async function revokeWorkspaceTokens(db: Db | Tx, workspaceIds: string[]): Promise<void> {
  if (workspaceIds.length === 0) return;
  await db
    .update(workspaceAuthTokens)
    .set({ revokedAt: sql`now()` })
    .where(and(inArray(workspaceAuthTokens.workspaceId, workspaceIds), liveWorkspaceToken()));
}

/** A token (live or revoked) of `workspaceId`, when that workspace is removed: when it was. */
export async function removedWorkspaceOfToken(db: Db, tokenHash: string, workspaceId: string): Promise<{ removedAt: Date | null } | undefined> {
  const [row] = await db
    .select({ removedAt: workspaces.removedAt })
    .from(workspaceAuthTokens)
    .innerJoin(workspaces, eq(workspaces.id, workspaceAuthTokens.workspaceId))
    .where(and(eq(workspaceAuthTokens.tokenHash, tokenHash), eq(workspaces.id, workspaceId), eq(workspaces.status, 'removed')));
  return row;
}
