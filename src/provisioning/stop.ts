import type { RequestScope } from '../lib/request-scope';
import { provisionerFor, TIMEOUTS_MS } from './provisioner';

/** SPEC §3: delete's cleanup budget; pause and hibernate stop within the same bound. */
export const STOP_BUDGET_MS = 30_000;

type AgentRef = { id: string; runtime: string; instance_id: string | null };

/**
 * Stops the given workspaces' agents in order (callers pass descendants first), within one shared
 * budget; external agents are not ours to stop. Returns the ids whose stop failed or did not fit
 * the budget. With no provisioner: nothing to stop, and nothing is touched.
 */
export async function stopAgents(scope: RequestScope, agents: AgentRef[], opts: { purge: boolean }): Promise<string[]> {
  const provisioner = provisionerFor(scope.env);
  if (!provisioner) return [];
  const deadline = Date.now() + STOP_BUDGET_MS;
  const failures: string[] = [];
  for (const agent of agents) {
    if (agent.runtime === 'external') continue;
    const remaining = deadline - Date.now();
    const outcome = remaining > 0 ? await provisioner.stop(agent.id, { purge: opts.purge, instanceId: agent.instance_id, timeoutMs: Math.min(remaining, TIMEOUTS_MS.stop) }) : undefined;
    if (!outcome?.ok) {
      console.error('stop failed', agent.id, outcome ? outcome.failure : 'out of budget');
      failures.push(agent.id);
    }
  }
  return failures;
}

