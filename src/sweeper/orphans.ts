import { sql } from 'drizzle-orm';
import { forgetContexts } from '../a2a/context-cache';
import { endRevokedFeeds } from '../events/revocation';
import type { RequestScope } from '../lib/request-scope';
import { provisionerFor, type Provisioner } from '../provisioning/provisioner';
import { stopAgents } from '../provisioning/stop';

/** Orphans stopped per run (each a provisioner call, within the shared stop budget). */
export const ORPHAN_BATCH = 20;
/** SPEC §20: a token unused this long, on a workspace with no agent running, is stale. */
export const STALE_TOKEN_GRACE_SECONDS = 300;
/** Workspaces whose stale tokens one run revokes (bounded; the next run continues). */
export const STALE_TOKEN_BATCH = 200;

/**
 * What the self-hosted (Docker) provisioner runs, or null when that cannot be known: no
 * provisioner, the EC2 backend (its stop needs the instance id on file, which an orphan lacks;
 * SPEC §20 is Docker-only), or a listing that failed. Both passes below act only on a real list.
 */
function managedAgents(scope: RequestScope): Promise<Managed | null> {
  // One listing per sweeper run, shared by both passes.
  let listing = listings.get(scope);
  if (!listing) listings.set(scope, (listing = listManaged(scope)));
  return listing;
}

type Managed = { provisioner: Provisioner; ids: string[] };
const listings = new WeakMap<RequestScope, Promise<Managed | null>>();

async function listManaged(scope: RequestScope): Promise<Managed | null> {
  const provisioner = provisionerFor(scope.env);
  if (!provisioner || provisioner.backend !== 'docker') return null;
  const listed = await provisioner.list();
  if (!listed.ok) {
    console.warn('sweeper: the provisioner could not list its agents; orphan and stale-token passes skipped', listed.failure);
    return null;
  }
  return { provisioner, ids: listed.value.workspace_ids };
}

/**
 * Containers we manage whose workspace is removed or unknown (a wiped or restored database) are
 * stopped and their config volumes removed (the agent removes a volume only after its stop
 * succeeded). An empty list means nothing to do, not an error.
 */
export async function stopOrphans(scope: RequestScope, opts: { workspaceIds?: string[] } = {}): Promise<number> {
  const managed = await managedAgents(scope);
  if (!managed) return 0;
  const listed = opts.workspaceIds ? managed.ids.filter((id) => opts.workspaceIds!.includes(id)) : managed.ids;
  if (listed.length === 0) return 0;
  const orphans = await scope.db.execute<{ id: string }>(sql`
    SELECT x.id::text AS id FROM unnest(${sql.param(listed)}::uuid[]) AS x(id)
     WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = x.id AND w.status <> 'removed')
     LIMIT ${ORPHAN_BATCH}`);
  const agents = orphans.rows.map((r) => ({ id: r.id, runtime: 'orphan', instance_id: null }));
  const failed = await stopAgents(scope, agents, { purge: true });
  return agents.length - failed.length;
}

/**
 * SPEC §20's third pass, self-hosted only and only on a real container list: a workspace with no
 * running container whose tokens have all gone unused for 5 minutes (a config volume wiped outside
 * the API leaves its agent on 401 forever) has its live tokens revoked, so its next register
 * bootstraps a fresh one. Never removed or provisioning workspaces (a provision is issuing one), and
 * never external or poll-mode agents, which never have a container. One statement repeats the
 * staleness predicate per workspace, so a token issued or used while the sweep runs keeps every
 * token of its workspace live.
 */
export async function revokeStaleTokens(scope: RequestScope, opts: { workspaceIds?: string[] } = {}): Promise<number> {
  const managed = await managedAgents(scope);
  if (!managed) return 0;
  const only = opts.workspaceIds ? sql`AND w.id IN ${opts.workspaceIds}` : sql``;
  const grace = sql`make_interval(secs => ${STALE_TOKEN_GRACE_SECONDS})`;
  const result = await scope.db.execute<{ token_id: string; workspace_id: string }>(sql`
    UPDATE workspace_auth_tokens t SET revoked_at = now()
     WHERE t.revoked_at IS NULL AND COALESCE(t.last_used_at, t.created_at) < now() - ${grace}
       AND t.workspace_id IN (
         SELECT w.id FROM workspaces w
          WHERE w.status NOT IN ('removed', 'provisioning') AND w.runtime <> 'external' AND w.delivery_mode <> 'poll'
            AND NOT (w.id = ANY(${sql.param(managed.ids)}::uuid[])) ${only}
            AND EXISTS (SELECT 1 FROM workspace_auth_tokens t1 WHERE t1.workspace_id = w.id AND t1.revoked_at IS NULL)
          LIMIT ${STALE_TOKEN_BATCH})
       AND NOT EXISTS (SELECT 1 FROM workspace_auth_tokens t2
                        WHERE t2.workspace_id = t.workspace_id AND t2.revoked_at IS NULL
                          AND COALESCE(t2.last_used_at, t2.created_at) >= now() - ${grace})
    RETURNING t.id AS token_id, t.workspace_id`);
  const revoked = result.rows.map((r) => ({ workspaceId: r.workspace_id, tokenId: r.token_id }));
  if (revoked.length === 0) return 0;
  for (const r of revoked) console.log('sweeper: revoked stale token of a workspace with no container', r.workspaceId, r.tokenId);
  forgetContexts({ workspaceIds: revoked.map((r) => r.workspaceId), tokenIds: revoked.map((r) => r.tokenId) });
  scope.defer('end revoked feeds', () => endRevokedFeeds(scope.env, revoked));
  return revoked.length;
}
