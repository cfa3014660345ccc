import { sql } from 'drizzle-orm';
import type { Bindings } from '../env';
import type { WorkspaceStatus } from '../db/schema';
import type { Db } from '../lib/request-scope';

// How long an agent may stay silent before it is marked offline (SPEC §19). The seed keeps a
// 180 s liveness key for every agent and marks external agents stale after 90 s
// (REMOTE_LIVENESS_STALE_AFTER): an external agent gets no longer silence, a shorter one. Both
// are three to six missed 30 s heartbeats, so a laptop that sleeps goes offline and comes back
// online with its next heartbeat; nothing of ours restarts it.
const AGENT_TTL_DEFAULT_S = 180;
const EXTERNAL_TTL_DEFAULT_S = 90;

/** Seconds of silence after which the workspace's agent counts as gone. */
export function livenessTtlSeconds(env: Pick<Bindings, 'LIVENESS_TTL_SECONDS' | 'REMOTE_LIVENESS_STALE_AFTER'>, runtime: string): number {
  return runtime === 'external'
    ? positiveSeconds(env.REMOTE_LIVENESS_STALE_AFTER, EXTERNAL_TTL_DEFAULT_S)
    : positiveSeconds(env.LIVENESS_TTL_SECONDS, AGENT_TTL_DEFAULT_S);
}

function positiveSeconds(raw: string | undefined, fallback: number): number {
  const n = Number(raw);
  return raw && Number.isInteger(n) && n > 0 && n <= 86_400 ? n : fallback;
}

export type LivenessCheck =
  | { kind: 'offline'; runtime: string; deliveryMode: string }
  /** Heard from since the deadline was set (a heartbeat whose deadline update was lost): check again then. */
  | { kind: 'alive'; nextCheckAt: number }
  /** Not a state liveness watches (offline already, paused, provisioning, removed, …). */
  | { kind: 'not_watched'; status: WorkspaceStatus | null };

/**
 * The liveness deadline passed: one statement flips online/degraded → offline only if the agent
 * really has been silent for `ttlSeconds` (re-checked on the row itself, so a heartbeat that
 * commits concurrently wins), and otherwise says when the agent was last heard from. Only
 * online/degraded are watched: provisioning has its own timeout, and paused, hibernated, failed
 * and removed workspaces have no agent to wait for.
 */
export async function markOfflineIfSilent(db: Db, id: string, ttlSeconds: number): Promise<LivenessCheck> {
  const result = await db.execute<{ status: WorkspaceStatus; runtime: string; delivery_mode: string; heard_ms: number | null; flipped: boolean }>(sql`
    WITH flipped AS (
      UPDATE workspaces SET status = 'offline', updated_at = now()
       WHERE id = ${id} AND status IN ('online', 'degraded')
         AND COALESCE(last_heartbeat_at, updated_at) < now() - make_interval(secs => ${ttlSeconds})
      RETURNING id
    )
    SELECT w.status, w.runtime, w.delivery_mode, (extract(epoch FROM COALESCE(w.last_heartbeat_at, w.updated_at)) * 1000)::float8 AS heard_ms,
           EXISTS (SELECT 1 FROM flipped) AS flipped
      FROM workspaces w WHERE w.id = ${id}`);
  const row = result.rows[0];
  if (!row) return { kind: 'not_watched', status: null };
  if (row.flipped) return { kind: 'offline', runtime: row.runtime, deliveryMode: row.delivery_mode };
  if ((row.status === 'online' || row.status === 'degraded') && row.heard_ms !== null) {
    return { kind: 'alive', nextCheckAt: Number(row.heard_ms) + ttlSeconds * 1000 };
  }
  return { kind: 'not_watched', status: row.status };
}
