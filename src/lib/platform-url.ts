import type { Context } from 'hono';
import type { AppEnv } from '../env';

/**
 * The platform's public origin, as agents must address it: `EXTERNAL_PLATFORM_URL` when set (the
 * edge may sit behind a custom domain), else the origin of the request. Never a trailing slash:
 * clients append paths and send it as `Origin`.
 */
export function platformUrl(c: Context<AppEnv>): string {
  return (c.env.EXTERNAL_PLATFORM_URL || new URL(c.req.url).origin).replace(/\/+$/, '');
}

/**
 * Where agents address a workspace: the platform's A2A proxy, never the agent's own URL. Every
 * client generation can POST there (RT1/RT2 and the SDK post straight to a discovered `url`), and
 * the proxy is where auth, the hierarchy rule and poll queues apply.
 */
export function workspaceA2AUrl(c: Context<AppEnv>, workspaceId: string): string {
  return `${platformUrl(c)}/workspaces/${workspaceId}/a2a`;
}
