import { and, eq, inArray, notInArray, sql, type SQL } from 'drizzle-orm';
import { forgetContexts } from '../a2a/context-cache';
import { workspaces, type WorkspaceStatus } from '../db/schema';
import type { Db } from '../lib/request-scope';

// Lifecycle transitions (SPEC §1, §18) as single conditional statements: of concurrent callers
// exactly one sees each transition happen. Every writer keeps the tombstone rule (never touches
// a removed row).

/** Statuses no automatic restart touches: gone, deliberately stopped, or on the way there. */
const NOT_RESTARTABLE: WorkspaceStatus[] = ['removed', 'paused', 'hibernating', 'hibernated'];
const MAX_DEPTH = 1000;

export type CycleRow = {
  id: string;
  name: string;
  role: string | null;
  model: string | null;
  tier: number;
  runtime: string;
  status: WorkspaceStatus;
  instance_id: string | null;
  last_heartbeat_at: string | null;
  ancestor_paused: boolean;
};

/** Whether any ancestor of the workspace is paused, as a SQL expression. */
function ancestorPausedSql(id: string) {
  return sql`(
    WITH RECURSIVE up(id, depth) AS (
      SELECT parent_id, 1 FROM workspaces WHERE id = ${id}::uuid AND parent_id IS NOT NULL
      UNION ALL
      SELECT w.parent_id, up.depth + 1 FROM up JOIN workspaces w ON w.id = up.id
       WHERE w.parent_id IS NOT NULL AND up.depth < ${MAX_DEPTH}
    )
    SELECT EXISTS (SELECT 1 FROM up JOIN workspaces w ON w.id = up.id WHERE w.status = 'paused'))`;
}

/** A workspace a restart cycle may act on (not removed, paused or hibernated), with what the cycle needs. */
export async function loadRestartable(db: Db, id: string): Promise<CycleRow | undefined> {
  const result = await db.execute<CycleRow>(sql`
    SELECT id, name, role, model, tier, runtime, status, instance_id, last_heartbeat_at, ${ancestorPausedSql(id)} AS ancestor_paused
      FROM workspaces
     WHERE id = ${id}::uuid AND status NOT IN ('removed', 'paused', 'hibernating', 'hibernated')`);
  return result.rows[0];
}

export type LifecycleView = { status: WorkspaceStatus; runtime: string; active_tasks: number; ancestor_paused: boolean };

/** What the lifecycle routes check before acting (undefined: unknown or removed). */
export async function lifecycleView(db: Db, id: string): Promise<LifecycleView | undefined> {
  const result = await db.execute<LifecycleView>(sql`
    SELECT status, runtime, active_tasks, ${ancestorPausedSql(id)} AS ancestor_paused
      FROM workspaces WHERE id = ${id}::uuid AND status <> 'removed'`);
  return result.rows[0];
}

export type Reprovisioned = { name: string; tier: number; runtime: string; previous_status: WorkspaceStatus };

/**
 * Into `provisioning` with no URL (the proxy stops dispatching to the agent about to be stopped),
 * unless the workspace is gone, paused or hibernating; `from` narrows the statuses it may leave.
 */
export async function enterProvisioning(db: Db, id: string, opts: { from?: WorkspaceStatus[] } = {}): Promise<Reprovisioned | undefined> {
  const result = await db.execute<Reprovisioned>(sql`
    WITH prev AS (SELECT id, status FROM workspaces WHERE id = ${id}::uuid FOR UPDATE)
    UPDATE workspaces w SET status = 'provisioning', url = NULL, updated_at = now()
      FROM prev
     WHERE w.id = prev.id AND w.runtime <> 'external'
       AND ${opts.from ? sql`w.status IN ${opts.from}` : sql`w.status NOT IN ${NOT_RESTARTABLE}`}
    RETURNING w.name, w.tier, w.runtime, prev.status AS previous_status`);
  forgetContexts({ workspaceIds: [id] });
  return result.rows[0];
}

/** A successful start: the instance on file and (when the backend knows it) the URL, unless the workspace moved on meanwhile. */
export function recordStart(db: Db, id: string, started: { url: string | null; instanceId: string | null }): Promise<boolean> {
  return transition(db, id, { instanceId: started.instanceId, ...(started.url ? { url: started.url } : {}) }, notInArray(workspaces.status, NOT_RESTARTABLE));
}

/**
 * One conditional UPDATE of a workspace row: it applies only while `condition` holds (the
 * transition's guard, checked by Postgres on the row itself), and the proxy's cached context of
 * the workspace is dropped. True when the row changed.
 */
async function transition(db: Db, id: string, fields: Partial<typeof workspaces.$inferInsert>, condition: SQL): Promise<boolean> {
  const rows = await db
    .update(workspaces)
    .set({ ...fields, updatedAt: sql`now()` })
    .where(and(eq(workspaces.id, id), condition))
    .returning({ id: workspaces.id });
  forgetContexts({ workspaceIds: [id] });
  return rows.length > 0;
}

/** provisioning → failed with the text shown as its last error; false when the workspace was no longer provisioning. */
export function markProvisionFailed(db: Db, id: string, text: string): Promise<boolean> {
  return transition(db, id, { status: 'failed', lastSampleError: text }, eq(workspaces.status, 'provisioning'));
}

export type AgentRow = { id: string; name: string; tier: number; runtime: string; instance_id: string | null };

/**
 * Pauses the workspace and its descendants (not through an already paused one) in one statement:
 * no URL, nothing restarts them. Undefined when the workspace is unknown, removed or already paused.
 */
export async function pauseTree(db: Db, id: string): Promise<AgentRow[] | undefined> {
  const result = await db.execute<AgentRow & { depth: number }>(sql`
    WITH RECURSIVE family(id, depth) AS (
      SELECT id, 0 FROM workspaces WHERE id = ${id}::uuid AND status NOT IN ('removed', 'paused')
      UNION ALL
      SELECT w.id, f.depth + 1 FROM workspaces w JOIN family f ON w.parent_id = f.id
       WHERE w.status NOT IN ('removed', 'paused') AND f.depth < ${MAX_DEPTH}
    )
    UPDATE workspaces w
       SET status = 'paused', url = CASE WHEN w.runtime = 'external' THEN w.url ELSE NULL END, updated_at = now()
      FROM family f
     WHERE w.id = f.id AND w.status NOT IN ('removed', 'paused')
    RETURNING w.id, w.name, w.tier, w.runtime, w.instance_id, f.depth`);
  const rows = result.rows.sort((a, b) => a.depth - b.depth);
  forgetContexts({ workspaceIds: rows.map((r) => r.id) });
  return rows.some((r) => r.id === id) ? rows : undefined;
}

/**
 * Resumes the paused workspace and its paused descendants: ours go back to `provisioning` (a
 * restart cycle starts them), external ones to `offline` until their agent is heard from again.
 */
export async function resumeTree(db: Db, id: string): Promise<(AgentRow & { status: WorkspaceStatus })[] | undefined> {
  const result = await db.execute<AgentRow & { status: WorkspaceStatus; depth: number }>(sql`
    WITH RECURSIVE family(id, depth) AS (
      SELECT id, 0 FROM workspaces WHERE id = ${id}::uuid AND status = 'paused'
      UNION ALL
      SELECT w.id, f.depth + 1 FROM workspaces w JOIN family f ON w.parent_id = f.id
       WHERE w.status = 'paused' AND f.depth < ${MAX_DEPTH}
    )
    UPDATE workspaces w
       SET status = CASE WHEN w.runtime = 'external' THEN 'offline' ELSE 'provisioning' END, updated_at = now()
      FROM family f
     WHERE w.id = f.id AND w.status = 'paused'
    RETURNING w.id, w.name, w.tier, w.runtime, w.instance_id, w.status, f.depth`);
  const rows = result.rows.sort((a, b) => a.depth - b.depth);
  forgetContexts({ workspaceIds: rows.map((r) => r.id) });
  return rows.some((r) => r.id === id) ? rows : undefined;
}

/**
 * The hibernation claim (online/degraded → hibernating, URL cleared so nothing is dispatched to
 * the agent being stopped). Only with no active tasks, unless forced. Of concurrent claims one wins.
 */
/**
 * The idle monitor's rule, once: no row in the workspace's feed (sent or received), no outbound
 * call, and not created, for its `hibernation_idle_minutes`. Evaluated on the `workspaces` row.
 */
export const idlePastItsWindow = sql`workspaces.hibernation_idle_minutes > 0 AND GREATEST(workspaces.created_at, workspaces.last_outbound_at,
  (SELECT a.created_at FROM activity_logs a WHERE a.workspace_id = workspaces.id ORDER BY a.seq DESC LIMIT 1))
  < now() - make_interval(mins => workspaces.hibernation_idle_minutes)`;

export async function claimHibernation(db: Db, id: string, force: boolean, opts: { onlyIfIdle?: boolean } = {}): Promise<AgentRow | undefined> {
  const rows = await db
    .update(workspaces)
    .set({ status: 'hibernating', url: null, updatedAt: sql`now()` })
    .where(
      and(
        eq(workspaces.id, id),
        inArray(workspaces.status, ['online', 'degraded']),
        sql`${workspaces.runtime} <> 'external'`,
        force ? undefined : eq(workspaces.activeTasks, 0),
        // The idle monitor re-checks idleness in the claim itself: a message since it chose the workspace keeps it awake.
        opts.onlyIfIdle ? idlePastItsWindow : undefined,
      ),
    )
    .returning({ id: workspaces.id, name: workspaces.name, tier: workspaces.tier, runtime: workspaces.runtime, instance_id: workspaces.instanceId });
  forgetContexts({ workspaceIds: [id] });
  return rows[0];
}

export function finishHibernation(db: Db, id: string): Promise<boolean> {
  return transition(db, id, { status: 'hibernated', url: null }, eq(workspaces.status, 'hibernating'));
}

/** The hibernation wake: hibernated → provisioning, once (the caller that flips it asks for the restart). */
export async function claimWake(db: Db, id: string): Promise<Reprovisioned | undefined> {
  return enterProvisioning(db, id, { from: ['hibernated'] });
}

/** The instance the backend knows the workspace's agent by (EC2), removed workspaces included. */
export async function agentOf(db: Db, id: string): Promise<{ runtime: string; instance_id: string | null } | undefined> {
  const [row] = await db.select({ runtime: workspaces.runtime, instance_id: workspaces.instanceId }).from(workspaces).where(eq(workspaces.id, id));
  return row;
}
