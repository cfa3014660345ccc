import type { BearerIdentity, Credential } from '../auth/credentials';
import { ApiError } from '../errors';
import { isUuid } from '../lib/ids';

/** Prefixes reserved for callers inside the platform; over HTTP they can only be forged. */
const SYSTEM_CALLER_PREFIXES = ['webhook:', 'system:', 'test:', 'channel:'];

/** Header checks that need no database: run before the context query. */
export function parseCallerHeader(header: string | undefined): string | null {
  const value = header?.trim();
  if (!value) return null;
  if (SYSTEM_CALLER_PREFIXES.some((p) => value.toLowerCase().startsWith(p))) throw new ApiError(403, 'invalid caller ID');
  if (!isUuid(value)) throw new ApiError(400, 'invalid caller ID: X-Workspace-ID must be a workspace id');
  return value.toLowerCase();
}

/**
 * Clients name the caller in `X-Workspace-ID` or `X-Source-Workspace-Id` (the SDK sends both,
 * equal; the channel plugin only the second); when both are present they must agree.
 */
export function callerFromHeaders(headers: { 'x-workspace-id'?: string; 'x-source-workspace-id'?: string }): string | null {
  const named = parseCallerHeader(headers['x-workspace-id']);
  const source = parseCallerHeader(headers['x-source-workspace-id']);
  if (named && source && named !== source) throw new ApiError(400, 'X-Workspace-ID and X-Source-Workspace-Id disagree');
  return named ?? source;
}

/**
 * Who is calling. The bearer is the authority and X-Workspace-ID only a hint that must agree
 * with it. `null` is the canvas class (operator UI, org automation), which skips the hierarchy
 * check and therefore needs an admin or org token: on a public edge a missing or dead credential
 * is never a free pass. A bearer that resolves to no live token derives no caller (canvas class)
 * and is then refused by that same rule, so revoking a token can never widen its access.
 */
export function resolveCaller(args: {
  targetId: string;
  headerCaller: string | null;
  bearer: BearerIdentity['kind'];
  context: { workspaceToken: { workspace_id: string } | null; orgToken: object | null };
}): string | null {
  const { targetId, headerCaller, bearer, context } = args;
  const tokenWorkspace = context.workspaceToken?.workspace_id ?? null;
  const operator = bearer === 'admin' || context.orgToken !== null;

  if (headerCaller && headerCaller !== targetId) {
    if (bearer === 'none') throw new ApiError(401, 'missing caller auth token');
    if (tokenWorkspace !== headerCaller) throw new ApiError(401, 'invalid caller auth token');
    return headerCaller;
  }
  if (tokenWorkspace) {
    // Self-calls name the target in the header; the token must then be the target's own.
    if (headerCaller && tokenWorkspace !== headerCaller) throw new ApiError(401, 'invalid caller auth token');
    return tokenWorkspace;
  }
  if (operator) return headerCaller;
  if (bearer === 'none') throw new ApiError(401, 'missing auth token: send a workspace, org or admin bearer token');
  throw new ApiError(401, 'invalid auth token');
}

/**
 * The same rule for routes that resolved the bearer already: what an agent may discover must be
 * exactly what the proxy would let it address.
 */
export function resolveCallerOf(credential: Credential, targetId: string, headerCaller: string | null): string | null {
  return resolveCaller({
    targetId,
    headerCaller,
    bearer: credential.kind === 'invalid' ? 'malformed' : credential.kind,
    context: {
      workspaceToken: credential.kind === 'workspace' ? { workspace_id: credential.workspaceId } : null,
      orgToken: credential.kind === 'org' ? { id: credential.tokenId } : null,
    },
  });
}
