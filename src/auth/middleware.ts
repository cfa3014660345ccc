import type { MiddlewareHandler } from 'hono';
import { isDevMode, type AppEnv } from '../env';
import { ApiError } from '../errors';
import { resolveCredential, type Credential } from './credentials';
import { parseWorkspaceId } from '../lib/ids';

declare module 'hono' {
  interface ContextVariableMap {
    credential: Credential;
  }
}

/** Operators: the ADMIN_TOKEN secret or an org API token. */
export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const credential = await resolveCredential(c.var.scope, c.req.header('Authorization'));
  c.set('credential', credential);
  if (credential.kind === 'admin' || credential.kind === 'org') return next();
  // Local convenience only: a dev stack with no ADMIN_TOKEN configured is open to its operator.
  if (credential.kind === 'none' && !c.env.ADMIN_TOKEN && isDevMode(c.env)) return next();
  if (credential.kind === 'none') throw new ApiError(401, 'admin auth required');
  throw new ApiError(401, 'invalid admin auth token');
};

/** `/workspaces/:id/*`: operators, or the workspace's own token. */
export const requireWorkspaceAccess: MiddlewareHandler<AppEnv> = async (c, next) => {
  const workspaceId = parseWorkspaceId(c.req.param('id'));
  const credential = await resolveCredential(c.var.scope, c.req.header('Authorization'));
  c.set('credential', credential);
  if (credential.kind === 'admin' || credential.kind === 'org') return next();
  if (credential.kind === 'workspace' && credential.workspaceId === workspaceId) return next();
  if (credential.kind === 'none') throw new ApiError(401, 'missing workspace auth token');
  throw new ApiError(401, 'invalid workspace auth token');
};
