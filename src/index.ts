import { createApp } from './app';
import type { Bindings } from './env';
import { runSweeper } from './sweeper';

export { WorkspaceCoordinator } from './coordinator/workspace-coordinator';
export { DelegationDispatcher } from './delegations/dispatcher';
export { ActivityWriter } from './activity/writer';
export { EventHub } from './events/hub';

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(controller: ScheduledController, env: Bindings, _ctx: ExecutionContext): Promise<void> {
    // Each pass is one line in src/sweeper/index.ts (SWEEP_PASSES).
    await runSweeper(env, { now: controller.scheduledTime });
  },
} satisfies ExportedHandler<Bindings>;
