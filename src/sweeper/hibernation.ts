import { sql } from 'drizzle-orm';
import type { RequestScope } from '../lib/request-scope';
import { hibernateWorkspace } from '../provisioning/hibernate';
import { provisionerFor } from '../provisioning/provisioner';
import { idlePastItsWindow } from '../workspaces/lifecycle';

/** Workspaces hibernated per run: each is a stop at the provisioner. */
export const HIBERNATION_BATCH = 10;

/**
 * The idle monitor (SPEC §18): workspaces with `hibernation_idle_minutes > 0`, online or
 * degraded, no active tasks, run by us (not external), and idle that long are hibernated through
 * the same path as POST /hibernate; the next A2A message wakes them. Idle: `idlePastItsWindow`,
 * checked when choosing and again in the claim. The seed measured the last heartbeat instead, which a live runtime refreshes every 30 s while
 * idle, so it could never fire. With no provisioner nothing could wake them: nothing is done.
 */
export async function hibernateIdleWorkspaces(scope: RequestScope, opts: { workspaceIds?: string[] } = {}): Promise<number> {
  const provisioner = provisionerFor(scope.env);
  if (!provisioner) return 0;
  const only = opts.workspaceIds ? sql`AND id IN ${opts.workspaceIds}` : sql``;
  const candidates = await scope.db.execute<{ id: string }>(sql`
    SELECT id FROM workspaces
     WHERE status IN ('online', 'degraded') AND active_tasks = 0 AND runtime <> 'external' ${only}
       AND ${idlePastItsWindow}
     LIMIT ${HIBERNATION_BATCH}`);
  let hibernated = 0;
  for (const { id } of candidates.rows) {
    // The claim re-checks state and active tasks: a workspace that got busy since is left alone.
    if (await hibernateWorkspace(scope, provisioner, id, { force: false, onlyIfIdle: true })) hibernated += 1;
  }
  return hibernated;
}
