import type { Bindings } from '../env';
import { provisionerFor } from './provisioner';

/**
 * Auto-restart entry point (dead agent, later liveness and secrets changes). With no provisioner
 * there is nothing that could restart the agent, so the request is dropped here rather than
 * queued in the coordinator.
 */
export async function requestRestart(env: Bindings, workspaceId: string): Promise<boolean> {
  if (!provisionerFor(env)) return false;
  const stub = env.WORKSPACE_COORDINATOR.get(env.WORKSPACE_COORDINATOR.idFromName(workspaceId));
  await stub.requestRestart(workspaceId);
  return true;
}

/** One restart cycle, run by the workspace's coordinator (never concurrently for one workspace). */
export async function runRestartCycle(env: Bindings, workspaceId: string): Promise<void> {
  const provisioner = provisionerFor(env);
  if (!provisioner) return;
  await provisioner.restart(workspaceId);
}
