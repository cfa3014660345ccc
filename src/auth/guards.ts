import type { Context } from 'hono';
import { isDevMode, type AppEnv } from '../env';
import { ApiError, datastoreUnavailable } from '../errors';
import { workspaceIsLive, workspaceTombstone } from '../workspaces/queries';
import { identifyBearer } from './credentials';
import { parseBearer } from './tokens';
import { removedWorkspaceOfToken } from './token-store';
import { resolveCredential, type Credential } from './credentials';

// Authorisation runs in the handler, after the route's validators: the ids it checks are the
// validated ones, parsed exactly once.

/** Operators: the ADMIN_TOKEN secret or an org API token. */
export function isOperator(credential: Credential): boolean {
  return credential.kind === 'admin' || credential.kind === 'org';
}

function credentialOf(c: Context<AppEnv>): Promise<Credential> {
  return resolveCredential(c.var.scope, c.req.header('Authorization'));
}

export async function authorizeAdmin(c: Context<AppEnv>): Promise<Credential> {
  const credential = await credentialOf(c);
  if (isOperator(credential)) return credential;
  // Local convenience only: a dev stack with no ADMIN_TOKEN configured is open to its operator.
  if (credential.kind === 'none' && !c.env.ADMIN_TOKEN && isDevMode(c.env)) return credential;
  if (credential.kind === 'none') throw new ApiError(401, 'admin auth required');
  throw new ApiError(401, 'invalid admin auth token');
}

/**
 * `/workspaces/:id/*`: operators, or the workspace's own token; either way the workspace must be
 * live. A workspace token already proves that (its lookup joins a live workspace); an operator
 * credential proves nothing about the path, so it is checked here, once for every such route:
 * unknown and removed workspaces are 404 to operators too, and nothing is written into them.
 */
export async function authorizeWorkspace(c: Context<AppEnv>, workspaceId: string): Promise<Credential> {
  const credential = await credentialOf(c);
  if (isOperator(credential)) {
    let live: boolean;
    try {
      live = await workspaceIsLive(c.var.scope.db, workspaceId);
    } catch (err) {
      throw datastoreUnavailable(err);
    }
    if (!live) throw new ApiError(404, 'workspace not found');
    return credential;
  }
  if (credential.kind === 'workspace' && credential.workspaceId === workspaceId) return credential;
  if (credential.kind === 'none') throw new ApiError(401, 'missing workspace auth token');
  throw new ApiError(401, 'invalid workspace auth token');
}

/** Registry calls must carry the workspace's own token (admin and org tokens do not speak for an agent). */
export function assertOwnToken(credential: Credential, workspaceId: string): void {
  if (credential.kind === 'none') throw new ApiError(401, 'missing workspace auth token');
  if (credential.kind !== 'workspace' || credential.workspaceId !== workspaceId) throw new ApiError(401, 'invalid workspace auth token');
}

export type WorkspaceRead = { removed: false; credential: Credential } | { removed: true; removedAt: Date | null };

/**
 * For the routes that tell a removed workspace's agent it is gone (GET /workspaces/:id → 410,
 * GET /workspaces/:id/state → deleted), so it can re-onboard instead of retrying forever. Its
 * token was revoked with the workspace, yet may still learn exactly that about its own workspace
 * (and nothing else); operators learn it about any. Everyone else gets the usual 401/404.
 */
export async function authorizeWorkspaceRead(c: Context<AppEnv>, workspaceId: string): Promise<WorkspaceRead> {
  const credential = await credentialOf(c);
  if (credential.kind === 'workspace' && credential.workspaceId === workspaceId) return { removed: false, credential };
  try {
    if (isOperator(credential)) {
      const state = await workspaceTombstone(c.var.scope.db, workspaceId);
      if (!state) throw new ApiError(404, 'workspace not found');
      return state.removed ? { removed: true, removedAt: state.removedAt } : { removed: false, credential };
    }
    const bearer = await identifyBearer(c.env, parseBearer(c.req.header('Authorization')));
    if (credential.kind === 'invalid' && bearer.kind === 'workspace') {
      const removed = await removedWorkspaceOfToken(c.var.scope.db, bearer.hash, workspaceId);
      if (removed) return { removed: true, removedAt: removed.removedAt };
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw datastoreUnavailable(err);
  }
  if (credential.kind === 'none') throw new ApiError(401, 'missing workspace auth token');
  throw new ApiError(401, 'invalid workspace auth token');
}
