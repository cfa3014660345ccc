import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, newRouter, optionalJsonBody } from '../api/openapi';
import { NO_CONTROL_CHARS, WorkspaceIdParam } from '../api/schemas';
import { authorizeAdmin, authorizeWorkspace, isOperator } from '../auth/guards';
import { listWorkspaceTokens, MAX_LIVE_TOKENS_PER_WORKSPACE, mintWorkspaceToken, revokeWorkspaceToken } from '../auth/token-store';
import type { AppEnv } from '../env';
import { ApiError } from '../errors';
import { endRevokedFeeds } from '../events/revocation';
import { KiB } from '../lib/body';

export const workspaceTokenRoutes = newRouter();

const MAX_PAGE = 200;
const DEFAULT_PAGE = 50;

const WorkspaceToken = z
  .object({ id: z.string(), prefix: z.string(), label: z.string().nullable(), created_at: z.string(), last_used_at: z.string().nullable() })
  .openapi('WorkspaceToken');

const TokenPage = z.object({
  limit: z
    .string()
    .regex(/^[1-9][0-9]{0,8}$/, 'limit must be a positive integer')
    .transform((v) => Math.min(Number(v), MAX_PAGE))
    .optional()
    .openapi({ type: 'integer', minimum: 1, maximum: MAX_PAGE }),
  offset: z
    .string()
    .regex(/^(0|[1-9][0-9]{0,8})$/, 'offset must be a non-negative integer')
    .transform(Number)
    .optional()
    .openapi({ type: 'integer', minimum: 0 }),
});

workspaceTokenRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/workspaces/{id}/tokens',
    tags: ['workspaces'],
    summary: "The workspace's live tokens (prefix and metadata, never the token), newest first",
    security: bearerSecurity,
    request: { params: WorkspaceIdParam, query: TokenPage },
    responses: {
      200: json(z.object({ tokens: z.array(WorkspaceToken), count: z.number().int() }).openapi('WorkspaceTokens'), 'This page of tokens; count is its length'),
      ...errors(400, 401, 404),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const page = c.req.valid('query');
    await authorizeWorkspace(c, id);
    const tokens = await listWorkspaceTokens(c.var.scope.db, id, { limit: page.limit ?? DEFAULT_PAGE, offset: page.offset ?? 0 });
    return c.json({ tokens, count: tokens.length } as never, 200);
  },
);

// The channel plugin's README sends {"label":"claude-channel"}; a label is kept for display only.
const MintToken = z
  .object({
    label: z.string().trim().max(100).regex(NO_CONTROL_CHARS, 'must not contain control characters').nullable().optional(),
  })
  .openapi('MintWorkspaceToken');

const Minted = z
  .object({ auth_token: z.string(), workspace_id: z.string(), id: z.string(), prefix: z.string(), message: z.string() })
  .openapi('MintedWorkspaceToken');

const mintResponses = {
  201: json(Minted, 'Minted: the token is shown this once'),
  429: json(z.object({ error: z.string() }), `The workspace already holds ${MAX_LIVE_TOKENS_PER_WORKSPACE} live tokens: revoke one first`),
};

workspaceTokenRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/tokens',
    tags: ['workspaces'],
    summary: `Mint another token for the workspace (operators only); at most ${MAX_LIVE_TOKENS_PER_WORKSPACE} live`,
    security: bearerSecurity,
    middleware: [readJsonBody(16 * KiB, { optional: true })] as const,
    request: { params: WorkspaceIdParam, body: optionalJsonBody(MintToken) },
    responses: { ...mintResponses, ...errors(400, 401, 403, 404, 413) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const { label } = c.req.valid('json');
    await authorizeTokenAdmin(c, id);
    return c.json(await mint(c, id, label), 201);
  },
);

workspaceTokenRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/admin/workspaces/{id}/tokens',
    tags: ['workspaces'],
    summary: 'Mint a token for a workspace (operators only), e.g. for the Claude Code channel plugin',
    security: bearerSecurity,
    middleware: [readJsonBody(16 * KiB, { optional: true })] as const,
    request: { params: WorkspaceIdParam, body: optionalJsonBody(MintToken) },
    responses: { ...mintResponses, ...errors(400, 401, 404, 413) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const { label } = c.req.valid('json');
    await authorizeAdmin(c);
    return c.json(await mint(c, id, label), 201);
  },
);

async function mint(c: Context<AppEnv>, workspaceId: string, label: string | null | undefined): Promise<z.output<typeof Minted>> {
  const outcome = await mintWorkspaceToken(c.var.scope.db, workspaceId, label || null);
  if (outcome.kind === 'not_found') throw new ApiError(404, 'workspace not found');
  if (outcome.kind === 'at_cap') throw new ApiError(429, `maximum ${MAX_LIVE_TOKENS_PER_WORKSPACE} active tokens per workspace`);
  return {
    auth_token: outcome.plaintext,
    workspace_id: workspaceId,
    id: outcome.id,
    prefix: outcome.prefix,
    message: 'Save this token now — it cannot be retrieved again.',
  };
}

const TokenParams = WorkspaceIdParam.extend({
  tokenId: z.guid({ message: 'invalid token ID' }).transform((v) => v.toLowerCase()).openapi({ param: { name: 'tokenId', in: 'path' }, type: 'string', format: 'uuid' }),
});

workspaceTokenRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/workspaces/{id}/tokens/{tokenId}',
    tags: ['workspaces'],
    summary: "Revoke one of the workspace's tokens (a token of another workspace is not found)",
    security: bearerSecurity,
    request: { params: TokenParams },
    responses: { 200: json(z.object({ status: z.literal('revoked') }), 'Revoked'), ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const { id, tokenId } = c.req.valid('param');
    await authorizeTokenAdmin(c, id);
    if (!(await revokeWorkspaceToken(c.var.scope.db, id, tokenId))) throw new ApiError(404, 'token not found or already revoked');
    // Its open live feeds end too (they were authorised once, at upgrade).
    await endRevokedFeeds(c.env, [{ workspaceId: id, tokenId }]);
    return c.json({ status: 'revoked' as const }, 200);
  },
);

/**
 * Minting and revoking are for operators: a workspace token that could mint more of itself, or
 * revoke its siblings, would let one leaked token lock the real agent out and outlive its own
 * revocation. Listing (prefixes only) stays open to the workspace's own token.
 */
async function authorizeTokenAdmin(c: Context<AppEnv>, id: string): Promise<void> {
  if (!isOperator(await authorizeWorkspace(c, id))) throw new ApiError(403, 'minting and revoking workspace tokens is an operator action');
}
