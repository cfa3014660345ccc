import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/**
 * The one error type handlers throw. `message` and `extra` are shown to the caller, so they
 * must be fixed texts: driver messages, upstream bodies and stack traces go to the log only.
 */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function renderError(err: unknown, c: Context): Response {
  if (err instanceof ApiError) {
    for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
    return c.json({ error: err.message, ...err.extra }, err.status);
  }
  console.error('unhandled error', c.req.method, c.req.path, err);
  return c.json({ error: 'internal error' }, 500);
}

/** A datastore failure surfaced to callers without its driver text. */
export function datastoreUnavailable(cause: unknown): ApiError {
  console.error('datastore error', cause);
  return new ApiError(503, 'platform datastore unavailable — retry shortly', { code: 'platform_unavailable' });
}
