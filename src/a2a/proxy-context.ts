import { sql } from 'drizzle-orm';
import type { DeliveryMode, WorkspaceStatus } from '../db/schema';
import type { RequestScope } from '../lib/request-scope';
import { MAX_ANCESTOR_DEPTH, type ChainRow } from './access';

export type TargetRow = {
  id: string;
  name: string;
  status: WorkspaceStatus;
  url: string | null;
  delivery_mode: DeliveryMode | null;
  runtime: string;
  /** As the last heartbeat sent it (src/routes/registry.ts): capabilities and the idle override. */
  runtime_metadata: { capabilities?: Record<string, boolean>; idle_timeout_seconds?: number } | null;
  budget_limit: number | null;
  monthly_spend: number;
};

export type ProxyContext = {
  target: TargetRow | null;
  workspaceToken: { id: string; workspace_id: string; last_used_at: string | null } | null;
  orgToken: { id: string; last_used_at: string | null } | null;
  chains: ChainRow[];
};

/**
 * Everything the proxy needs before dispatch, in ONE round trip: the target row, the bearer's
 * token (workspace or org), and both ancestor chains for the hierarchy check. The hot path
 * costs this query and nothing else; activity writes happen after the response.
 */
export async function loadProxyContext(
  scope: RequestScope,
  args: { targetId: string; headerCaller: string | null; workspaceTokenHash: string | null; orgTokenHash: string | null },
): Promise<ProxyContext> {
  const { targetId, headerCaller, workspaceTokenHash, orgTokenHash } = args;
  const result = await scope.db.execute<{ target: TargetRow | null; ws_token: ProxyContext['workspaceToken']; org_token: ProxyContext['orgToken']; chains: ChainRow[] }>(sql`
    WITH RECURSIVE
    ws_token AS (
      SELECT t.id, t.workspace_id, t.last_used_at
        FROM workspace_auth_tokens t JOIN workspaces w ON w.id = t.workspace_id
       WHERE t.token_hash = ${workspaceTokenHash} AND t.revoked_at IS NULL AND w.status <> 'removed'
    ),
    org_token AS (
      SELECT id, last_used_at FROM org_api_tokens WHERE token_hash = ${orgTokenHash} AND revoked_at IS NULL
    ),
    chain(origin, id, parent_id, depth) AS (
      SELECT w.id, w.id, w.parent_id, 0 FROM workspaces w
       WHERE w.id IN (${targetId}::uuid, COALESCE(${headerCaller}::uuid, (SELECT workspace_id FROM ws_token)))
      UNION ALL
      SELECT c.origin, p.id, p.parent_id, c.depth + 1
        FROM chain c JOIN workspaces p ON p.id = c.parent_id
       WHERE c.depth < ${MAX_ANCESTOR_DEPTH}
    )
    SELECT
      (SELECT json_build_object(
          'id', id, 'name', name, 'status', status, 'url', url, 'delivery_mode', delivery_mode,
          'runtime', runtime, 'runtime_metadata', runtime_metadata,
          'budget_limit', budget_limit, 'monthly_spend', monthly_spend)
         FROM workspaces WHERE id = ${targetId}::uuid AND status <> 'removed') AS target,
      (SELECT row_to_json(ws_token) FROM ws_token) AS ws_token,
      (SELECT row_to_json(org_token) FROM org_token) AS org_token,
      (SELECT coalesce(json_agg(json_build_object('origin', origin, 'id', id, 'parent_id', parent_id) ORDER BY origin, depth), '[]'::json)
         FROM chain) AS chains`);
  const row = result.rows[0]!;
  return { target: row.target, workspaceToken: row.ws_token, orgToken: row.org_token, chains: row.chains };
}

/** Mode of a target as read; anything but an explicit `poll` is push (never a silent drop). */
export function deliveryModeOf(target: Pick<TargetRow, 'delivery_mode'>): DeliveryMode {
  return target.delivery_mode === 'poll' ? 'poll' : 'push';
}

export function hasCapability(target: Pick<TargetRow, 'runtime_metadata'>, capability: string): boolean {
  return target.runtime_metadata?.capabilities?.[capability] === true;
}
