import { and, eq, isNull, sql } from 'drizzle-orm';
import { orgApiTokens, workspaceAuthTokens, workspaces } from '../db/schema';
import { datastoreUnavailable } from '../errors';
import type { RequestScope } from '../lib/request-scope';
import { liveWorkspace } from '../workspaces/queries';
import { liveWorkspaceToken } from './token-store';
import { digestBearer, parseBearer, tokenKind } from './tokens';

export type Credential =
  | { kind: 'none' }
  | { kind: 'invalid' }
  | { kind: 'admin' }
  | { kind: 'org'; tokenId: string; prefix: string }
  | { kind: 'workspace'; tokenId: string; workspaceId: string };

// last_used_at is observability, not security: refreshing it at most once a minute keeps
// a hot token from turning every request into a row-locking write.
const TOUCH_INTERVAL_MS = 60_000;

export type BearerIdentity =
  | { kind: 'none' }
  | { kind: 'admin' }
  | { kind: 'malformed' }
  | { kind: 'workspace'; hash: string }
  | { kind: 'org'; hash: string };

/** What a bearer claims to be, before any lookup: the admin secret, or a token of one kind and its hash. */
export async function identifyBearer(env: RequestScope['env'], bearer: string | undefined): Promise<BearerIdentity> {
  if (!bearer) return { kind: 'none' };
  const { matchesSecret, hash } = await digestBearer(bearer, env.ADMIN_TOKEN);
  if (matchesSecret) return { kind: 'admin' };
  const kind = tokenKind(bearer);
  return kind ? { kind, hash } : { kind: 'malformed' };
}

/** Resolves the request's bearer to who it is. A datastore failure is a 503, never a pass. */
export async function resolveCredential(scope: RequestScope, authorization: string | undefined): Promise<Credential> {
  const bearer = await identifyBearer(scope.env, parseBearer(authorization));
  if (bearer.kind === 'none' || bearer.kind === 'admin') return { kind: bearer.kind };
  if (bearer.kind === 'malformed') return { kind: 'invalid' };
  try {
    if (bearer.kind === 'org') return await lookupOrgToken(scope, bearer.hash);
    return await lookupWorkspaceToken(scope, bearer.hash);
  } catch (err) {
    throw datastoreUnavailable(err);
  }
}

async function lookupWorkspaceToken(scope: RequestScope, hash: string): Promise<Credential> {
  const [row] = await scope.db
    .select({ id: workspaceAuthTokens.id, workspaceId: workspaceAuthTokens.workspaceId, lastUsedAt: workspaceAuthTokens.lastUsedAt })
    .from(workspaceAuthTokens)
    .innerJoin(workspaces, eq(workspaces.id, workspaceAuthTokens.workspaceId))
    .where(and(eq(workspaceAuthTokens.tokenHash, hash), liveWorkspaceToken(), liveWorkspace()))
    .limit(1);
  if (!row) return { kind: 'invalid' };
  touchWorkspaceToken(scope, row.id, row.lastUsedAt);
  return { kind: 'workspace', tokenId: row.id, workspaceId: row.workspaceId };
}

async function lookupOrgToken(scope: RequestScope, hash: string): Promise<Credential> {
  const [row] = await scope.db
    .select({ id: orgApiTokens.id, prefix: orgApiTokens.prefix, lastUsedAt: orgApiTokens.lastUsedAt })
    .from(orgApiTokens)
    .where(and(eq(orgApiTokens.tokenHash, hash), isNull(orgApiTokens.revokedAt)))
    .limit(1);
  if (!row) return { kind: 'invalid' };
  if (isStale(row.lastUsedAt)) {
    scope.defer('touch org token', () =>
      scope.db.update(orgApiTokens).set({ lastUsedAt: sql`now()` }).where(eq(orgApiTokens.id, row.id)),
    );
  }
  return { kind: 'org', tokenId: row.id, prefix: row.prefix };
}

/** True when it scheduled a write (the caller may then remember the new last_used_at). */
export function touchWorkspaceToken(scope: RequestScope, tokenId: string, lastUsedAt: Date | string | null): boolean {
  if (!isStale(lastUsedAt)) return false;
  scope.defer('touch workspace token', () =>
    scope.db.update(workspaceAuthTokens).set({ lastUsedAt: sql`now()` }).where(eq(workspaceAuthTokens.id, tokenId)),
  );
  return true;
}

function isStale(lastUsedAt: Date | string | null): boolean {
  return !lastUsedAt || Date.now() - new Date(lastUsedAt).getTime() > TOUCH_INTERVAL_MS;
}
