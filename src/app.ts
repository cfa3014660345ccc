import { Hono } from 'hono';
import type { AppEnv } from './env';
import { renderError } from './errors';
import { RequestScope } from './lib/request-scope';
import { a2aRoutes } from './routes/a2a';
import { activityRoutes } from './routes/activity';
import { healthRoutes } from './routes/health';
import { orgTokenRoutes } from './routes/org-tokens';
import { registryRoutes } from './routes/registry';
import { workspaceRoutes } from './routes/workspaces';

export function createApp() {
  const app = new Hono<AppEnv>();

  app.use('*', async (c, next) => {
    const scope = new RequestScope(c.env);
    c.set('scope', scope);
    try {
      await next();
    } finally {
      c.executionCtx.waitUntil(scope.close());
    }
  });

  app.route('/health', healthRoutes);
  app.route('/org/tokens', orgTokenRoutes);
  app.route('/registry', registryRoutes);
  // The A2A routes authenticate in-handler (caller identity), so they mount before the
  // workspace routes whose `/:id` middleware would otherwise claim them.
  app.route('/workspaces', a2aRoutes);
  app.route('/workspaces', activityRoutes);
  app.route('/workspaces', workspaceRoutes);

  app.notFound((c) => c.json({ error: 'not found' }, 404));
  app.onError(renderError);
  return app;
}
