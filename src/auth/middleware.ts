import type { MiddlewareHandler } from 'hono';
import { isDevMode, type AppEnv } from '../env';
import { ApiError, datastoreUnavailable } from '../errors';
import { resolveCredential, type Credential } from './credentials';
import { parseWorkspaceId } from '../lib/ids';
import { workspaceIsLive } from '../workspaces/queries';

declare module 'hono' {
  interface ContextVariableMap {
    credential: Credential;
  }
}

/** Operators: the ADMIN_TOKEN secret or an org API token. */
export function isOperator(credential: Credential): boolean {
  return credential.kind === 'admin' || credential.kind === 'org';
}

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const credential = await resolveCredential(c.var.scope, c.req.header('Authorization'));
  c.set('credential', credential);
  if (isOperator(credential)) return next();
  // Local convenience only: a dev stack with no ADMIN_TOKEN configured is open to its operator.
  if (credential.kind === 'none' && !c.env.ADMIN_TOKEN && isDevMode(c.env)) return next();
  if (credential.kind === 'none') throw new ApiError(401, 'admin auth required');
  throw new ApiError(401, 'invalid admin auth token');
};

/**
 * `/workspaces/:id/*`: operators, or the workspace's own token; either way the workspace must be
 * live. A workspace token already proves that (its lookup joins a live workspace); an operator
 * credential proves nothing about the path, so it is checked here, once for every route below:
 * unknown and removed workspaces are 404 to operators too, and nothing is written into them.
 */
export const requireWorkspaceAccess: MiddlewareHandler<AppEnv> = async (c, next) => {
  const workspaceId = parseWorkspaceId(c.req.param('id'));
  const credential = await resolveCredential(c.var.scope, c.req.header('Authorization'));
  c.set('credential', credential);
  if (isOperator(credential)) {
    let live: boolean;
    try {
      live = await workspaceIsLive(c.var.scope.db, workspaceId);
    } catch (err) {
      throw datastoreUnavailable(err);
    }
    if (!live) throw new ApiError(404, 'workspace not found');
    return next();
  }
  if (credential.kind === 'workspace' && credential.workspaceId === workspaceId) return next();
  if (credential.kind === 'none') throw new ApiError(401, 'missing workspace auth token');
  throw new ApiError(401, 'invalid workspace auth token');
};
