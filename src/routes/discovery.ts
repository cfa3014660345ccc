import { createRoute, z } from '@hono/zod-openapi';
import { callerFromHeaders, resolveCallerOf } from '../a2a/caller';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { CallerHeaders, Uuid, WorkspaceIdParam } from '../api/schemas';
import { resolveCredential } from '../auth/credentials';
import { assertOwnToken, authorizeWorkspace } from '../auth/guards';
import { WORKSPACE_STATUSES } from '../db/schema';
import { ApiError } from '../errors';
import { publishEvent } from '../events/publish';
import { KiB } from '../lib/body';
import { workspaceA2AUrl } from '../lib/platform-url';
import { discoverPeer, listPeers, MAX_PEERS, publicAgentCard, storeAgentCard } from '../workspaces/peers';

export const discoveryRoutes = newRouter();

const UpdateCard = z
  .object({
    workspace_id: Uuid,
    agent_card: z.record(z.string(), z.unknown()),
  })
  .openapi('UpdateCard');

discoveryRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/registry/update-card',
    tags: ['registry'],
    summary: "An agent replaces its own agent card (its own token); the last write wins",
    security: bearerSecurity,
    middleware: [readJsonBody(256 * KiB)] as const,
    request: { body: jsonBody(UpdateCard) },
    responses: { 200: json(z.object({ status: z.literal('updated') }), 'Stored'), ...errors(400, 401, 404, 413) },
  }),
  async (c) => {
    const { workspace_id: id, agent_card: card } = c.req.valid('json');
    const scope = c.var.scope;
    assertOwnToken(await resolveCredential(scope, c.req.header('Authorization')), id);
    // The token proved a live workspace a moment ago; a removal since then must not be written into.
    if (!(await storeAgentCard(scope.db, id, card))) throw new ApiError(404, 'workspace not found');
    publishEvent(scope, 'AGENT_CARD_UPDATED', id, { agent_card: card });
    return c.json({ status: 'updated' as const }, 200);
  },
);

const DiscoveredPeer = z
  .object({
    id: z.string(),
    name: z.string(),
    url: z.string().openapi({ description: "The platform's A2A proxy for this workspace (never the agent's own address)" }),
    status: z.enum(WORKSPACE_STATUSES),
  })
  .openapi('DiscoveredPeer');

const PEER_NOT_FOUND = 'workspace not found';

discoveryRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/registry/discover/{id}',
    tags: ['registry'],
    summary: 'Where to address a peer (the A2A proxy URL), if the hierarchy rule lets the caller reach it',
    description:
      'The caller is the bearer\'s workspace; `X-Workspace-ID`, when sent, must name that same workspace. Operators (admin, org ' +
      'tokens) send no `X-Workspace-ID` and may discover any live workspace, as the proxy lets them address any. A peer out of ' +
      "the caller's reach answers the same 404 as an unknown one. Every live status answers 200: a poll or awaiting agent's " +
      'messages wait in its feed.',
    security: bearerSecurity,
    request: { params: WorkspaceIdParam, headers: CallerHeaders },
    responses: { 200: json(DiscoveredPeer, 'The peer'), ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const { id: targetId } = c.req.valid('param');
    const headerCaller = callerFromHeaders(c.req.valid('header'));
    const scope = c.var.scope;
    const callerId = resolveCallerOf(await resolveCredential(scope, c.req.header('Authorization')), targetId, headerCaller);
    const peer = await discoverPeer(scope.db, callerId, targetId);
    if (!peer) throw new ApiError(404, PEER_NOT_FOUND);
    return c.json({ id: peer.id, name: peer.name, url: workspaceA2AUrl(c, peer.id), status: peer.status }, 200);
  },
);

const Peer = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.string().nullable(),
    tier: z.number().int(),
    status: z.enum(WORKSPACE_STATUSES),
    url: z.string().openapi({ description: "The platform's A2A proxy for this workspace (never the agent's own address)" }),
    parent_id: z.string().nullable(),
    active_tasks: z.number().int(),
    agent_card: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ description: "The peer's card as it published it, with its endpoint fields pointing at the proxy" }),
  })
  .openapi('Peer');

const PeersQuery = z.object({
  q: z
    .string()
    .trim()
    .max(255)
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'q must not contain control characters')
    .optional()
    .openapi({ description: 'Case-insensitive substring of the name or role' }),
});

discoveryRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/registry/{id}/peers',
    tags: ['registry'],
    summary: 'The workspaces this one may address: siblings (other roots, for a root), then children, then the parent',
    description: `Its own token, or an operator's; \`X-Workspace-ID\`, when sent, must be \`id\`. At most ${MAX_PEERS} peers.`,
    security: bearerSecurity,
    request: { params: WorkspaceIdParam, query: PeersQuery, headers: CallerHeaders },
    responses: { 200: json(z.array(Peer), 'The peers (an empty array when there are none)'), ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const { q } = c.req.valid('query');
    const headerCaller = callerFromHeaders(c.req.valid('header'));
    await authorizeWorkspace(c, id);
    if (headerCaller && headerCaller !== id) throw new ApiError(401, 'invalid caller auth token');
    const rows = await listPeers(c.var.scope.db, id, q || undefined);
    return c.json(
      rows.map(({ agent_card, ...row }) => {
        const url = workspaceA2AUrl(c, row.id);
        return { ...row, url, agent_card: publicAgentCard(agent_card, url) };
      }),
      200,
    );
  },
);
