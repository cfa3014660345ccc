import { createApp } from './app';
import type { Bindings } from './env';

export { WorkspaceCoordinator } from './events/workspace-coordinator';

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(_controller: ScheduledController, _env: Bindings, _ctx: ExecutionContext): Promise<void> {
    // The sweeper (liveness, queue expiry, retention) lands with the provisioner/restart issues.
  },
} satisfies ExportedHandler<Bindings>;
