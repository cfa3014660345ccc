import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
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
  // A library's own refusal (a validator's 415, a malformed body): its status, with a fixed text.
  if (err instanceof HTTPException && err.status >= 400 && err.status < 500) {
    return c.json({ error: err.status === 415 ? 'unsupported media type' : 'invalid request' }, err.status as ContentfulStatusCode);
  }
  const refused = refusedByDatastore(err);
  if (refused) {
    // Validation should have caught it first; the log says which route let it through.
    console.warn('datastore refused input', c.req.method, c.req.path, pgError(err));
    return c.json({ error: refused.message }, refused.status);
  }
  console.error('unhandled error', c.req.method, c.req.path, err);
  return c.json({ error: 'internal error' }, 500);
}

/**
 * The SQLSTATE (and constraint, when one said no) of a Postgres error, looking through drizzle's
 * wrapper (`cause`). Undefined for anything that is not a server error (network, driver bugs).
 */
export function pgError(err: unknown): { code: string; constraint?: string } | undefined {
  for (let e: unknown = err, hops = 0; e && typeof e === 'object' && hops < 5; e = (e as { cause?: unknown }).cause, hops++) {
    const { code, constraint } = e as { code?: unknown; constraint?: unknown };
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return { code, ...(typeof constraint === 'string' ? { constraint } : {}) };
  }
  return undefined;
}

/**
 * Last line of defence: input the datastore refuses is the caller's problem (4xx), never a 500
 * with driver text. Class 22 = data exception (bad encoding, out of range), 54 = too complex
 * (deep jsonb), 23 = a constraint said no.
 */
function refusedByDatastore(err: unknown): { status: 400 | 409; message: string } | undefined {
  const code = pgError(err)?.code;
  if (!code) return undefined;
  if (code.startsWith('22') || code.startsWith('54')) return { status: 400, message: 'request contains a value that cannot be stored' };
  if (code.startsWith('23')) return { status: 409, message: 'request conflicts with the current state' };
  return undefined;
}

/** A datastore failure surfaced to callers without its driver text. */
export function datastoreUnavailable(cause: unknown): ApiError {
  console.error('datastore error', cause);
  return new ApiError(503, 'platform datastore unavailable — retry shortly', { code: 'platform_unavailable' });
}
