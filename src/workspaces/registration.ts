import { eq, sql } from 'drizzle-orm';
import { forgetContexts } from '../a2a/context-cache';
import { issueFirstToken, removedWorkspaceOfToken } from '../auth/token-store';
import type { Credential } from '../auth/credentials';
import { assertOwnToken } from '../auth/guards';
import { workspaces, type DeliveryMode, type WorkspaceStatus } from '../db/schema';
import { ApiError } from '../errors';
import type { Db } from '../lib/request-scope';

/** What a removed workspace's agent is told, so it re-onboards instead of retrying forever. */
export const REONBOARD_HINT = 'Regenerate workspace + token from the canvas → Tokens tab';

export function workspaceRemoved(id: string, removedAt: Date | null): ApiError {
  return new ApiError(410, 'workspace removed', { id, removed_at: removedAt?.toISOString() ?? null, hint: REONBOARD_HINT });
}

/**
 * Clients send placeholders where they have no inbound URL (`""`, the SDK's `remote://no-inbound`):
 * anything that is not http(s) means "no URL", never a 400.
 */
export function usableUrl(url: string | undefined): string | undefined {
  return url && /^https?:\/\//i.test(url) ? url : undefined;
}

export type Registration = { mode: DeliveryMode; url?: string; authToken?: string; inboundSecret: string | null; runtime: string };

/**
 * An agent announces itself: one transaction, the workspace row locked first in its own statement
 * (so everything after reads what the previous holder committed; racing registrations serialise
 * here), the bootstrap token issued only while the workspace holds none, then the row updated.
 * `checkUrl` is the SSRF gate (it throws a 400 for a URL the proxy would refuse).
 */
export async function registerAgent(
  db: Db,
  args: {
    id: string;
    credential: Credential;
    /** SHA-256 of a workspace bearer that resolved to nothing (revoked): may learn "removed". */
    deadTokenHash?: string;
    url?: string;
    agentCard: Record<string, unknown>;
    deliveryMode?: DeliveryMode;
    checkUrl: (url: string) => string;
  },
): Promise<Registration> {
  const { id, credential } = args;
  const registration = await db.transaction(async (tx) => {
    const [row] = await tx
      .select({ status: workspaces.status, deliveryMode: workspaces.deliveryMode, url: workspaces.url, runtime: workspaces.runtime, inboundSecret: workspaces.platformInboundSecret, removedAt: workspaces.removedAt })
      .from(workspaces)
      .where(eq(workspaces.id, id))
      .for('update');
    // Workspaces are created by operators; register never conjures one, nor revives a removed one.
    if (!row) throw new ApiError(404, 'workspace not found');
    if (row.status === 'removed') {
      // Only the workspace's own (now revoked) token is told it was removed, so it re-onboards;
      // to anyone else a removed workspace is as unknown as one that never existed.
      const own = args.deadTokenHash && (await removedWorkspaceOfToken(tx, args.deadTokenHash, id));
      throw own ? workspaceRemoved(id, row.removedAt) : new ApiError(404, 'workspace not found');
    }
    const ownToken = credential.kind === 'workspace' && credential.workspaceId === id;
    // Bootstrap: without its own token, a caller gets one only while the workspace holds none.
    const authToken = ownToken ? undefined : await issueFirstToken(tx, id);
    if (!ownToken && !authToken) assertOwnToken(credential, id);

    const url = usableUrl(args.url) && args.checkUrl(args.url!);
    // A placeholder URL says "I cannot be reached": with no stated mode, an external agent that
    // sends one is a poll agent (the SDK registers with `remote://no-inbound` and no mode). No URL
    // at all keeps the stored mode, and a push workspace without a URL is refused (seed rule).
    const placeholder = args.url !== undefined && !url;
    const mode: DeliveryMode = args.deliveryMode ?? (placeholder && row.runtime === 'external' && !row.url ? 'poll' : row.deliveryMode);
    if (mode === 'push' && !url && !row.url) throw new ApiError(400, 'url is required for push delivery (or register with delivery_mode "poll")');

    await tx
      .update(workspaces)
      .set({ ...(url ? { url } : {}), agentCard: args.agentCard, status: 'online', deliveryMode: mode, lastHeartbeatAt: sql`now()`, updatedAt: sql`now()` })
      .where(eq(workspaces.id, id));
    return { mode, url: url || undefined, authToken, inboundSecret: row.inboundSecret, runtime: row.runtime };
  });
  forgetContexts({ workspaceIds: [id] });
  return registration;
}

export type HeartbeatInput = {
  id: string;
  errorRate: number;
  sampleError: string | null;
  activeTasks: number;
  uptimeSeconds: number;
  currentTask: string | null;
  spendCents: number;
  runtimeState: string | null;
  runtimeMetadata: Record<string, unknown> | null;
  nativeStatus: boolean;
};

export type HeartbeatOutcome = {
  previous_status: WorkspaceStatus;
  previous_task: string | null;
  status: WorkspaceStatus;
  max_concurrent_tasks: number;
  has_queued: boolean;
  platform_inbound_secret: string | null;
  runtime: string;
};

/**
 * One statement: lock, read the previous state, apply the status rules, write. The wedged
 * self-report is never gated; error-rate inference yields to agents that manage their own status
 * (`status_mgmt`). Any other runtime_state ("ok", "") is healthy. Undefined: no live workspace.
 */
export async function recordHeartbeat(db: Db, h: HeartbeatInput): Promise<HeartbeatOutcome | undefined> {
  const wedged = h.runtimeState === 'wedged';
  const result = await db.execute<HeartbeatOutcome>(sql`
    WITH prev AS (
      SELECT id, status, current_task FROM workspaces WHERE id = ${h.id} AND status <> 'removed' FOR UPDATE
    )
    UPDATE workspaces w SET
      last_heartbeat_at = now(),
      last_error_rate = ${h.errorRate},
      last_sample_error = ${h.sampleError},
      active_tasks = ${h.activeTasks},
      uptime_seconds = ${h.uptimeSeconds},
      current_task = ${h.currentTask},
      monthly_spend = CASE WHEN ${h.spendCents}::bigint > 0 THEN ${h.spendCents}::bigint ELSE w.monthly_spend END,
      runtime_state = ${h.runtimeState},
      runtime_metadata = ${h.runtimeMetadata ? JSON.stringify(h.runtimeMetadata) : null}::jsonb,
      updated_at = now(),
      status = CASE
        WHEN prev.status = 'online' AND ${wedged} THEN 'degraded'
        WHEN prev.status = 'online' AND NOT ${h.nativeStatus} AND ${h.errorRate} >= 0.5 THEN 'degraded'
        WHEN prev.status = 'degraded' AND NOT ${h.nativeStatus} AND ${h.errorRate} < 0.1 AND NOT ${wedged} THEN 'online'
        WHEN prev.status IN ('offline', 'provisioning', 'awaiting_agent') THEN 'online'
        ELSE prev.status
      END
    FROM prev WHERE w.id = prev.id
    RETURNING prev.status AS previous_status, prev.current_task AS previous_task, w.status, w.max_concurrent_tasks,
      w.platform_inbound_secret, w.runtime,
      EXISTS (SELECT 1 FROM a2a_queue q WHERE q.workspace_id = w.id AND q.status = 'queued') AS has_queued`);
  // Spend (the budget check), status and capabilities are in the proxy's context.
  forgetContexts({ workspaceIds: [h.id] });
  return result.rows[0];
}
