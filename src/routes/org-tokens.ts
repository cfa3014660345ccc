import { createRoute, z } from '@hono/zod-openapi';
import { desc, isNull } from 'drizzle-orm';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { authorizeAdmin } from '../auth/guards';
import { revokeOrgToken } from '../auth/token-store';
import { issueToken } from '../auth/tokens';
import { orgApiTokens } from '../db/schema';
import { ApiError } from '../errors';
import { coordinatorOf, orgTokenSubscriber } from '../coordinator';
import { eventHub, hubTag } from '../events/hub';
import { KiB } from '../lib/body';

export const orgTokenRoutes = newRouter();

const OrgToken = z
  .object({ id: z.string(), prefix: z.string(), name: z.string().nullable(), created_by: z.string(), created_at: z.string(), last_used_at: z.string().nullable() })
  .openapi('OrgToken');

orgTokenRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/org/tokens',
    tags: ['org tokens'],
    summary: 'Live org API tokens (never their plaintext)',
    security: bearerSecurity,
    responses: { 200: json(z.object({ tokens: z.array(OrgToken), count: z.number().int() }), 'Tokens, newest first'), ...errors(401) },
  }),
  async (c) => {
    await authorizeAdmin(c);
    const tokens = await c.var.scope.db
      .select({ id: orgApiTokens.id, prefix: orgApiTokens.prefix, name: orgApiTokens.name, created_by: orgApiTokens.createdBy, created_at: orgApiTokens.createdAt, last_used_at: orgApiTokens.lastUsedAt })
      .from(orgApiTokens)
      .where(isNull(orgApiTokens.revokedAt))
      .orderBy(desc(orgApiTokens.createdAt))
      .limit(500);
    return c.json({ tokens, count: tokens.length } as never, 200);
  },
);

const MintOrgToken = z.object({ name: z.string().trim().max(100).optional() }).openapi('MintOrgToken');

orgTokenRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/org/tokens',
    tags: ['org tokens'],
    summary: 'Mint an org API token (shown once)',
    security: bearerSecurity,
    middleware: [readJsonBody(64 * KiB)] as const,
    request: { body: jsonBody(MintOrgToken) },
    responses: {
      201: json(z.object({ id: z.string(), prefix: z.string(), name: z.string().nullable(), auth_token: z.string(), warning: z.string() }), 'Minted'),
      ...errors(400, 401, 413),
    },
  }),
  async (c) => {
    const credential = await authorizeAdmin(c);
    const input = c.req.valid('json');
    const createdBy = credential.kind === 'org' ? `org-token:${credential.prefix}` : 'admin-token';
    const token = await issueToken('org');
    const [row] = await c.var.scope.db
      .insert(orgApiTokens)
      .values({ tokenHash: token.hash, prefix: token.prefix, name: input.name || null, createdBy })
      .returning({ id: orgApiTokens.id });
    return c.json(
      { id: row!.id, prefix: token.prefix, name: input.name || null, auth_token: token.plaintext, warning: 'store this token now: it is shown once and grants org-wide access' },
      201,
    );
  },
);

orgTokenRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/org/tokens/{tokenId}',
    tags: ['org tokens'],
    summary: 'Revoke an org API token',
    security: bearerSecurity,
    request: { params: z.object({ tokenId: z.guid({ message: 'invalid token ID' }).openapi({ param: { name: 'tokenId', in: 'path' }, type: 'string', format: 'uuid' }) }) },
    responses: { 200: json(z.object({ revoked: z.string() }), 'Revoked'), ...errors(400, 401, 404) },
  }),
  async (c) => {
    await authorizeAdmin(c);
    const { tokenId } = c.req.valid('param');
    if (!(await revokeOrgToken(c.var.scope.db, tokenId))) throw new ApiError(404, 'token not found or already revoked');
    // Its live event connections were authorised once, at connect: they end now, on the hub and on
    // every workspace feed it opened.
    const id = tokenId.toLowerCase();
    const hub = eventHub(c.env);
    const [, feeds] = await Promise.all([hub.closeSubscribers(hubTag.orgToken(id)), hub.takeOrgFeeds(id)]);
    await Promise.all(feeds.map((workspaceId) => coordinatorOf(c.env, workspaceId).closeSubscribers(orgTokenSubscriber(id))));
    return c.json({ revoked: tokenId }, 200);
  },
);
