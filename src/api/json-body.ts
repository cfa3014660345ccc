import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env';
import { jsonProblem, readBodyText } from '../lib/body';
import { parseJsonText } from '../lib/json-text';

/**
 * The JSON media types the route validators accept (@hono/zod-openapi's own test): anything else
 * (`application/json;`, `application/vnd.v2+json`, `text/plain`) is rewritten before they run,
 * since their refusal of it is an uncaught 415 that would end as a 500.
 */
const VALIDATOR_JSON_MEDIA_TYPE = /^application\/([a-z-.]+\+)?json(;\s*[a-zA-Z0-9-]+=([^;]+))*$/i;

/**
 * Runs in front of a route's validators (route middleware does): the body is read with a hard
 * byte cap, passed through the JSON gate (depth, NUL, surrogates), and parsed once; the validator
 * then gets the parsed value instead of reading the stream again.
 *
 * A JSON body is JSON whatever its Content-Type says (the Go platform's binder ignored it too, and
 * `curl -d` sends form encoding by default), so the validator is shown a JSON media type.
 *
 * `deferInvalid`: text that is not JSON reaches the handler as `undefined` instead of a 400 here,
 * for a route whose pipeline answers it later in its own dialect (the A2A proxy authenticates
 * first, then answers a JSON-RPC parse error). The gate's limits are never deferred.
 *
 * `optional`: an empty (or all-whitespace) body reads as `{}`, for routes whose every field is
 * optional and whose callers POST with no body at all (`curl -X POST`). Pair with `optionalJsonBody`.
 */
export function readJsonBody(maxBytes: number, { deferInvalid = false, optional = false } = {}): MiddlewareHandler<AppEnv> {
  return async function readJsonBody(c, next) {
    const text = await readBodyText(c, maxBytes);
    const parsed = optional && text.trim() === '' ? parseJsonText('{}') : parseJsonText(text);
    if (!parsed.ok && (parsed.problem !== 'invalid' || !deferInvalid)) throw jsonProblem(parsed.problem);
    const value = parsed.ok ? parsed.value : undefined;
    if (!VALIDATOR_JSON_MEDIA_TYPE.test(c.req.header('Content-Type') ?? '')) {
      const headers = new Headers(c.req.raw.headers);
      headers.set('Content-Type', 'application/json');
      c.req.raw = new Request(c.req.raw.url, { method: c.req.raw.method, headers });
    }
    c.req.json = <T>() => Promise.resolve(value as T);
    await next();
  };
}
