import { and, desc, eq, inArray, isNull, ne, sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import { forgetContexts } from '../a2a/context-cache';
import { orgApiTokens, workspaceAuthTokens, workspaces } from '../db/schema';
import type { Db } from '../lib/request-scope';
import { issueToken, randomSecret } from './tokens';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** The one definition of a live workspace token. */
export function liveWorkspaceToken(): SQL {
  return isNull(workspaceAuthTokens.revokedAt);
}

/**
 * The bootstrap rule: until a workspace has been given a token, registering is how it gets one.
 * "Given", not "holds": once any token existed, revoking them all does not reopen the door (else
 * revoking a leaked token would hand a fresh one to whoever registers first); an operator mints a
 * new one instead. One statement decides and writes: the NOT EXISTS sees tokens committed before it
 * started, and the unique index on live `issued` tokens turns any insert that raced past it into a
 * no-op. Returns the plaintext for the one winner, undefined for everyone else.
 */
export async function issueFirstToken(db: Db | Tx, workspaceId: string): Promise<string | undefined> {
  const token = await issueToken('workspace');
  const inserted = await db.execute<{ id: string }>(sql`
    INSERT INTO ${workspaceAuthTokens} (workspace_id, token_hash, prefix, origin)
    SELECT ${workspaceId}::uuid, ${token.hash}, ${token.prefix}, 'issued'
     WHERE NOT EXISTS (SELECT 1 FROM ${workspaceAuthTokens} WHERE workspace_id = ${workspaceId}::uuid)
    ON CONFLICT (workspace_id) WHERE revoked_at IS NULL AND origin = 'issued' DO NOTHING
    RETURNING id`);
  return inserted.rows.length > 0 ? token.plaintext : undefined;
}

/**
 * Whether a workspace has been given its first token. Until then anyone who knows its id could
 * claim it by registering, so agents are not shown such workspaces (peers, discover).
 */
export function tokenEverIssued(workspaceId: AnyPgColumn): SQL {
  return sql`EXISTS (SELECT 1 FROM ${workspaceAuthTokens} WHERE ${workspaceAuthTokens.workspaceId} = ${workspaceId})`;
}

/**
 * Revokes every live token of the given workspaces (delete, re-provision). Runs inside the
 * caller's transaction, so the caller forgets the cached contexts once it has committed.
 */
export async function revokeWorkspaceTokens(db: Db | Tx, workspaceIds: string[]): Promise<void> {
  if (workspaceIds.length === 0) return;
  await db
    .update(workspaceAuthTokens)
    .set({ revokedAt: sql`now()` })
    .where(and(inArray(workspaceAuthTokens.workspaceId, workspaceIds), liveWorkspaceToken()));
}

export type ProvisionCredentials = { authToken: string; inboundSecret: string; revokedTokenIds: string[] };

/**
 * Every (re)provision hands the agent fresh credentials (SPEC §17 steps 6-7, §15): all live tokens
 * of the workspace are revoked, one new `issued` token is inserted and the inbound secret is
 * rotated, in one transaction. The row is locked first (as register's bootstrap and mints do), and
 * the revocation precedes the insert, so the "one live issued token" index always holds. The
 * bootstrap door stays shut: tokens have now been given, so a tokenless register is refused.
 * Undefined when the workspace is unknown or removed.
 */
export async function reissueProvisionCredentials(db: Db, workspaceId: string): Promise<ProvisionCredentials | undefined> {
  const token = await issueToken('workspace');
  const inboundSecret = randomSecret();
  const issued = await db.transaction(async (tx) => {
    const [row] = await tx
      .update(workspaces)
      .set({ platformInboundSecret: inboundSecret, updatedAt: sql`now()` })
      .where(and(eq(workspaces.id, workspaceId), ne(workspaces.status, 'removed')))
      .returning({ id: workspaces.id });
    if (!row) return undefined;
    const revoked = await tx
      .update(workspaceAuthTokens)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(workspaceAuthTokens.workspaceId, workspaceId), liveWorkspaceToken()))
      .returning({ id: workspaceAuthTokens.id });
    await tx.insert(workspaceAuthTokens).values({ workspaceId, tokenHash: token.hash, prefix: token.prefix, origin: 'issued' });
    return { authToken: token.plaintext, inboundSecret, revokedTokenIds: revoked.map((r) => r.id) };
  });
  if (issued) forgetContexts({ workspaceIds: [workspaceId], tokenIds: issued.revokedTokenIds });
  return issued;
}

/** A token (live or revoked) of `workspaceId`, when that workspace is removed: when it was. */
export async function removedWorkspaceOfToken(db: Db | Tx, tokenHash: string, workspaceId: string): Promise<{ removedAt: Date | null } | undefined> {
  const [row] = await db
    .select({ removedAt: workspaces.removedAt })
    .from(workspaceAuthTokens)
    .innerJoin(workspaces, eq(workspaces.id, workspaceAuthTokens.workspaceId))
    .where(and(eq(workspaceAuthTokens.tokenHash, tokenHash), eq(workspaces.id, workspaceId), eq(workspaces.status, 'removed')));
  return row;
}

/** Live tokens a workspace may hold at once, whatever their origin (Go's cap, kept). */
export const MAX_LIVE_TOKENS_PER_WORKSPACE = 50;

export type MintOutcome = { kind: 'minted'; id: string; prefix: string; plaintext: string } | { kind: 'not_found' } | { kind: 'at_cap' };

/**
 * An extra token for a live workspace (origin `minted`), unless it already holds the maximum.
 * The workspace row lock is taken in its own statement; the insert that follows takes a fresh
 * READ COMMITTED snapshot, so its count sees every mint committed by whoever held the lock
 * before. (A count in the same statement as the FOR UPDATE would use the snapshot from before
 * the wait, and concurrent mints would all see room.) Register's bootstrap holds the same lock.
 */
export async function mintWorkspaceToken(db: Db, workspaceId: string, label: string | null): Promise<MintOutcome> {
  const token = await issueToken('workspace');
  return db.transaction(async (tx) => {
    const [workspace] = await tx
      .select({ id: workspaces.id })
      .from(workspaces)
      .where(and(eq(workspaces.id, workspaceId), ne(workspaces.status, 'removed')))
      .for('update');
    if (!workspace) return { kind: 'not_found' } as const;
    const inserted = await tx.execute<{ id: string }>(sql`
      INSERT INTO ${workspaceAuthTokens} (workspace_id, token_hash, prefix, origin, label)
      SELECT ${workspaceId}::uuid, ${token.hash}, ${token.prefix}, 'minted', ${label}
       WHERE (SELECT count(*) FROM ${workspaceAuthTokens} WHERE workspace_id = ${workspaceId}::uuid AND revoked_at IS NULL) < ${MAX_LIVE_TOKENS_PER_WORKSPACE}
      RETURNING id`);
    const row = inserted.rows[0];
    if (!row) return { kind: 'at_cap' } as const;
    return { kind: 'minted', id: row.id, prefix: token.prefix, plaintext: token.plaintext } as const;
  });
}

export type TokenListing = { id: string; prefix: string; label: string | null; created_at: Date; last_used_at: Date | null };

/** A workspace's live tokens (never a hash or plaintext), newest first. */
export async function listWorkspaceTokens(db: Db, workspaceId: string, page: { limit: number; offset: number }): Promise<TokenListing[]> {
  return db
    .select({
      id: workspaceAuthTokens.id,
      prefix: workspaceAuthTokens.prefix,
      label: workspaceAuthTokens.label,
      created_at: workspaceAuthTokens.createdAt,
      last_used_at: workspaceAuthTokens.lastUsedAt,
    })
    .from(workspaceAuthTokens)
    .where(and(eq(workspaceAuthTokens.workspaceId, workspaceId), liveWorkspaceToken()))
    .orderBy(desc(workspaceAuthTokens.createdAt), desc(workspaceAuthTokens.id))
    .limit(page.limit)
    .offset(page.offset);
}

/** Revokes one live token, only if it belongs to the workspace; false when there was none to revoke. */
export async function revokeWorkspaceToken(db: Db, workspaceId: string, tokenId: string): Promise<boolean> {
  const revoked = await db
    .update(workspaceAuthTokens)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(workspaceAuthTokens.id, tokenId), eq(workspaceAuthTokens.workspaceId, workspaceId), liveWorkspaceToken()))
    .returning({ id: workspaceAuthTokens.id });
  forgetContexts({ tokenIds: [tokenId] });
  return revoked.length > 0;
}

/** Revokes one live org token; false when there was none to revoke. */
export async function revokeOrgToken(db: Db, tokenId: string): Promise<boolean> {
  const revoked = await db
    .update(orgApiTokens)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(orgApiTokens.id, tokenId), isNull(orgApiTokens.revokedAt)))
    .returning({ id: orgApiTokens.id });
  forgetContexts({ tokenIds: [tokenId] });
  return revoked.length > 0;
}

/**
 * Which of these token ids are still live (workspace tokens: of a live workspace too). For holders
 * of long-lived connections, which were authorised once: one statement for all of them, lazy so
 * it can ride in a batch with other reads (see the event hub). Rows: the live ids.
 */
export function liveTokenIdsQuery(db: Db, ids: { workspace: string[]; org: string[] }) {
  // Array parameters, not drizzle's list rendering: one bind each whatever the count, and an
  // empty list is an empty array rather than invalid SQL.
  return db.execute<{ id: string }>(sql`
    SELECT ${workspaceAuthTokens.id} AS id FROM ${workspaceAuthTokens}
      JOIN ${workspaces} ON ${workspaces.id} = ${workspaceAuthTokens.workspaceId}
     WHERE ${workspaceAuthTokens.id} = ANY(${sql.param(ids.workspace)}::uuid[]) AND ${liveWorkspaceToken()} AND ${ne(workspaces.status, 'removed')}
    UNION ALL
    SELECT ${orgApiTokens.id} FROM ${orgApiTokens}
     WHERE ${orgApiTokens.id} = ANY(${sql.param(ids.org)}::uuid[]) AND ${isNull(orgApiTokens.revokedAt)}`);
}

/** `liveTokenIdsQuery`, run on its own. */
export async function liveTokenIds(db: Db, ids: { workspace: string[]; org: string[] }): Promise<Set<string>> {
  const result = await liveTokenIdsQuery(db, ids);
  return new Set(result.rows.map((r) => r.id));
}
