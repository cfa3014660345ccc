import { coordinatorOf, type CycleKind } from '../coordinator';
import type { Bindings } from '../env';
import { publishEvent } from '../events/publish';
import type { RequestScope } from '../lib/request-scope';
import { claimWake, enterProvisioning, loadRestartable } from '../workspaces/lifecycle';
import { provisionWorkspace } from './provision';
import { provisionerFor } from './provisioner';
import { snapshotRestartContext, type RestartContext } from './restart-context';

/** A workspace entered `provisioning` (restart, resume, wake, a cycle): what its canvas is told. */
export function announceProvisioning(scope: RequestScope, id: string, w: { name: string; tier: number; runtime: string }, extra: Record<string, unknown> = {}): void {
  publishEvent(scope, 'WORKSPACE_PROVISIONING', id, { name: w.name, tier: w.tier, runtime: w.runtime, ...extra });
}

/**
 * Entry point of every (re)provision: create, the restart route, resume, the dead-agent path, the
 * hibernation wake (and later liveness and secrets changes). With no provisioner nothing could run
 * the agent, so the request is dropped here rather than queued in the coordinator.
 */
export async function requestRestart(env: Bindings, workspaceId: string, kind: CycleKind = 'restart'): Promise<boolean> {
  if (!provisionerFor(env)) return false;
  await coordinatorOf(env, workspaceId).requestRestart(kind);
  return true;
}

/**
 * The hibernation wake. The cycle leaves hibernated workspaces alone (SPEC §18), so the wake first
 * flips hibernated → provisioning, atomically: of many messages arriving at once, the one that
 * flips it asks for the restart; the rest find it provisioning already.
 */
export async function wakeWorkspace(scope: RequestScope, workspaceId: string): Promise<void> {
  if (!provisionerFor(scope.env)) return;
  const woken = await claimWake(scope.db, workspaceId);
  if (!woken) return;
  announceProvisioning(scope, workspaceId, woken, { reason: 'wake' });
  await requestRestart(scope.env, workspaceId);
}

/**
 * One cycle, run by the workspace's coordinator (never two at once for one workspace). A restart:
 * load; skip external, paused (itself or an ancestor), hibernated and removed workspaces;
 * `provisioning` with no URL, broadcast; stop; provision synchronously, so a follow-up cycle never
 * stops a half-started agent. A fresh workspace's first cycle only provisions. Returns the restart
 * context to send once the agent is back (none for a first start or a failed one). With no
 * provisioner: a no-op that touches neither the DB nor anything else.
 */
export async function runRestartCycle(scope: RequestScope, workspaceId: string, opts: { fresh: boolean }): Promise<RestartContext | undefined> {
  const provisioner = provisionerFor(scope.env);
  if (!provisioner) return undefined;
  const row = await loadRestartable(scope.db, workspaceId);
  if (!row || row.runtime === 'external' || row.ancestor_paused) return undefined;

  let context: RestartContext | undefined;
  if (!opts.fresh || row.status !== 'provisioning') {
    context = await snapshotRestartContext(scope.db, workspaceId, row.last_heartbeat_at);
    const entered = await enterProvisioning(scope.db, workspaceId);
    if (!entered) return undefined;
    // The restart route, resume and the wake announce their own flip.
    if (entered.previous_status !== 'provisioning') announceProvisioning(scope, workspaceId, row);
    const stopped = await provisioner.stop(workspaceId, { purge: false, instanceId: row.instance_id });
    // A stop that failed is logged and the cycle goes on: the new start replaces the agent.
    if (!stopped.ok) console.error('restart: stop failed, provisioning anyway', workspaceId, stopped.failure);
  }
  const started = await provisionWorkspace(scope, provisioner, row);
  return started ? context : undefined;
}
