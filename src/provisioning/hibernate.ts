import { publishEvent } from '../events/publish';
import type { RequestScope } from '../lib/request-scope';
import { claimHibernation, finishHibernation } from '../workspaces/lifecycle';
import type { Provisioner } from './provisioner';

/**
 * Hibernation, for the route and the idle monitor alike: claim (online/degraded → hibernating, the
 * URL cleared, only with no active tasks unless forced; of concurrent claims one wins), stop the
 * agent, then hibernated + WORKSPACE_HIBERNATED. False when the claim found nothing to hibernate.
 * A failed stop is logged and the workspace still hibernates: the next message wakes it through a
 * restart, which stops whatever is left first.
 */
export async function hibernateWorkspace(scope: RequestScope, provisioner: Provisioner, id: string, opts: { force: boolean; onlyIfIdle?: boolean }): Promise<boolean> {
  const claimed = await claimHibernation(scope.db, id, opts.force, { onlyIfIdle: opts.onlyIfIdle });
  if (!claimed) return false;
  const stopped = await provisioner.stop(id, { purge: false, instanceId: claimed.instance_id });
  if (!stopped.ok) console.error('hibernate: stop failed', id, stopped.failure);
  if (await finishHibernation(scope.db, id)) publishEvent(scope, 'WORKSPACE_HIBERNATED', id, { name: claimed.name, tier: claimed.tier });
  return true;
}
