import { createApp } from './app';
import { requeueStaleDispatches } from './a2a/queue';
import type { Bindings } from './env';
import { RequestScope } from './lib/request-scope';
import { sweepDelegations } from './delegations/sweep';

export { WorkspaceCoordinator } from './coordinator/workspace-coordinator';
export { DelegationDispatcher } from './delegations/dispatcher';
export { ActivityWriter } from './activity/writer';

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(_controller: ScheduledController, env: Bindings, _ctx: ExecutionContext): Promise<void> {
    // More sweeper passes (liveness, retention) land with the provisioner/restart issues.
    const scope = new RequestScope(env);
    try {
      await requeueStaleDispatches(scope.db);
      await sweepDelegations(env, scope);
    } finally {
      await scope.close();
    }
  },
} satisfies ExportedHandler<Bindings>;
