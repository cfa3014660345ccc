import { Scalar } from '@scalar/hono-api-reference';
import { newRouter } from './api/openapi';
import { renderError } from './errors';
import { RequestScope } from './lib/request-scope';
import { a2aRoutes } from './routes/a2a';
import { activityRoutes } from './routes/activity';
import { delegationRoutes } from './routes/delegations';
import { discoveryRoutes } from './routes/discovery';
import { healthRoutes } from './routes/health';
import { liveEventRoutes } from './routes/live-events';
import { bootstrapRoutes } from './routes/bootstrap';
import { lifecycleRoutes } from './routes/lifecycle';
import { memoryRoutes } from './routes/memories';
import { notifyRoutes } from './routes/notify';
import { orgTokenRoutes } from './routes/org-tokens';
import { registryRoutes } from './routes/registry';
import { usageRoutes } from './routes/usage';
import { workspaceStateRoutes } from './routes/workspace-state';
import { workspaceTokenRoutes } from './routes/workspace-tokens';
import { workspaceRoutes } from './routes/workspaces';

export const OPENAPI_INFO = {
  title: 'Molecule Edge',
  version: '0.2.0',
  description:
    'Control plane for organisations of AI agents: registry, auth, the A2A proxy, the activity feed and live events. ' +
    'Every error is `{"error": "<fixed text>", ...}`; validation errors list the field and the rule, never the value.',
};

/** Routes, in one place. Each module's paths are absolute, so the document and the router agree. */
const ROUTERS = [
  healthRoutes,
  orgTokenRoutes,
  registryRoutes,
  discoveryRoutes,
  a2aRoutes,
  activityRoutes,
  workspaceRoutes,
  lifecycleRoutes,
  workspaceStateRoutes,
  workspaceTokenRoutes,
  notifyRoutes,
  memoryRoutes,
  delegationRoutes,
  usageRoutes,
  liveEventRoutes,
  bootstrapRoutes,
];

export function createApp() {
  const app = newRouter();

  app.use('*', async (c, next) => {
    const scope = new RequestScope(c.env);
    c.set('scope', scope);
    try {
      await next();
    } finally {
      c.executionCtx.waitUntil(scope.close());
    }
  });

  for (const router of ROUTERS) app.route('/', router);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'A workspace token (`mws_…`), an org token (`mog_…`) or the ADMIN_TOKEN secret',
  });
  app.doc31('/openapi.json', { openapi: '3.1.0', info: OPENAPI_INFO });
  app.get('/docs', Scalar({ url: '/openapi.json', pageTitle: 'Molecule Edge API' }));

  app.notFound((c) => c.json({ error: 'not found' }, 404));
  app.onError(renderError);
  return app;
}
