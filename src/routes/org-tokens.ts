import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import { Hono } from 'hono';
import { z } from 'zod';
import { requireAdmin } from '../auth/middleware';
import { issueToken } from '../auth/tokens';
import { orgApiTokens } from '../db/schema';
import type { AppEnv } from '../env';
import { ApiError } from '../errors';
import { parseJsonBody } from '../lib/body';
import { isUuid } from '../lib/ids';

export const orgTokenRoutes = new Hono<AppEnv>();
orgTokenRoutes.use('*', requireAdmin);

orgTokenRoutes.get('/', async (c) => {
  const tokens = await c.var.scope.db
    .select({ id: orgApiTokens.id, prefix: orgApiTokens.prefix, name: orgApiTokens.name, created_by: orgApiTokens.createdBy, created_at: orgApiTokens.createdAt, last_used_at: orgApiTokens.lastUsedAt })
    .from(orgApiTokens)
    .where(isNull(orgApiTokens.revokedAt))
    .orderBy(desc(orgApiTokens.createdAt))
    .limit(500);
  return c.json({ tokens, count: tokens.length });
});

const mintSchema = z.object({ name: z.string().trim().max(100).optional() });

orgTokenRoutes.post('/', async (c) => {
  const input = await parseJsonBody(c, mintSchema);
  const credential = c.var.credential;
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
});

orgTokenRoutes.delete('/:tokenId', async (c) => {
  const tokenId = c.req.param('tokenId');
  if (!isUuid(tokenId)) throw new ApiError(400, 'invalid token ID');
  const [row] = await c.var.scope.db
    .update(orgApiTokens)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(orgApiTokens.id, tokenId), isNull(orgApiTokens.revokedAt)))
    .returning({ id: orgApiTokens.id });
  if (!row) throw new ApiError(404, 'token not found or already revoked');
  return c.json({ revoked: row.id });
});
