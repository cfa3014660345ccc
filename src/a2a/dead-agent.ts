import { and, eq, notInArray, sql } from 'drizzle-orm';
import { workspaces } from '../db/schema';
import { publishEvent } from '../events/publish';
import type { RequestScope } from '../lib/request-scope';
import { provisionerFor } from '../provisioning/provisioner';
import { requestRestart } from '../provisioning/restart';
import { agentOf } from '../workspaces/lifecycle';
import { forgetContexts } from './context-cache';
import type { TargetRow } from './proxy-context';

/**
 * Asks the provisioner whether the agent behind a failed call is really gone. Only a definite
 * "not running" flips the workspace offline and triggers the coalesced restart; external agents
 * (nobody of ours runs them), workspaces deliberately stopped (paused, hibernating) and every
 * uncertain answer leave a possibly healthy agent alone.
 */
export async function markDeadIfNotRunning(scope: RequestScope, target: Pick<TargetRow, 'id' | 'runtime'>): Promise<boolean> {
  if (target.runtime === 'external') return false;
  const provisioner = provisionerFor(scope.env);
  if (!provisioner) return false;
  const agent = await agentOf(scope.db, target.id);
  if (!agent || (await provisioner.liveness(target.id, agent.instance_id)) !== 'not_running') return false;

  const flipped = await scope.db
    .update(workspaces)
    .set({ status: 'offline', updatedAt: sql`now()` })
    .where(and(eq(workspaces.id, target.id), notInArray(workspaces.status, ['removed', 'provisioning', 'paused', 'hibernating', 'hibernated'])))
    .returning({ id: workspaces.id });
  forgetContexts({ workspaceIds: [target.id] });
  if (flipped.length > 0) publishEvent(scope, 'WORKSPACE_OFFLINE', target.id, { reason: 'agent not running' });
  // Requested either way: the cycle itself leaves paused and hibernated workspaces alone.
  scope.defer('restart dead agent', () => requestRestart(scope.env, target.id));
  return true;
}
