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
