import { OpenAPIHono, z, type Hook } from '@hono/zod-openapi';
import type { AppEnv } from '../env';
import { ApiError } from '../errors';
import { describeIssues } from '../lib/body';

/** Every error body: a fixed text, and sometimes a code, validation issues or a hint. */
export const ErrorBody = z
  .object({
    error: z.string(),
    code: z.string().optional(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .catchall(z.unknown())
  .openapi('Error');

const ERROR_DESCRIPTIONS = {
  400: 'Invalid input (the body names the field and the rule, never the value)',
  401: 'Missing or invalid credentials',
  402: 'Workspace budget exhausted',
  403: 'Not allowed for this credential',
  404: 'Not found (or not visible to this credential)',
  409: 'Conflicts with the current state',
  410: 'Gone',
  413: 'Request body too large',
  426: 'WebSocket upgrade required',
  429: 'Too many',
  501: 'Not available on this platform instance',
  502: 'The agent (or the provisioner) could not be reached or answered badly',
  503: 'Temporarily unavailable; retry (see Retry-After)',
} as const;
type ErrorStatus = keyof typeof ERROR_DESCRIPTIONS;

/** The error responses a route declares: every one renders the shared Error schema. */
export function errors<S extends ErrorStatus>(...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((s) => [s, { description: ERROR_DESCRIPTIONS[s], content: { 'application/json': { schema: ErrorBody } } }]),
  ) as unknown as { [K in S]: { description: string; content: { 'application/json': { schema: typeof ErrorBody } } } };
}

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { 'application/json': { schema } } };
}

/** A JSON body the caller may leave out entirely (the route reads it with `readJsonBody(…, { optional: true })`). */
export function optionalJsonBody<T extends z.ZodType>(schema: T) {
  return { required: false, content: { 'application/json': { schema } } };
}

/** Requests every workspace route may carry (declared once, so the document lists them). */
export const bearerSecurity = [{ bearer: [] as string[] }];

const TARGET_TEXT: Record<string, string> = {
  json: 'invalid request body',
  query: 'invalid query',
  header: 'invalid header',
  cookie: 'invalid cookie',
  form: 'invalid form',
};

/**
 * Every validation failure, whichever part of the request, becomes the one ApiError and so the one
 * rendering: a fixed text per target and the issues (field + rule). A path parameter's schema
 * carries its own fixed text (e.g. "invalid workspace ID"), which becomes the error itself.
 */
export const defaultHook: Hook<unknown, AppEnv, string, unknown> = (result) => {
  if (!result.success) rejectInvalid(result.target, result.error.issues);
};

function rejectInvalid(target: string, zodIssues: readonly z.core.$ZodIssue[]): never {
  const issues = describeIssues(zodIssues);
  if (target === 'param') throw new ApiError(400, issues[0]?.message ?? 'invalid path parameter');
  throw new ApiError(400, TARGET_TEXT[target] ?? 'invalid request', { issues });
}

/** One request part through its schema, answered exactly as the route validators answer, for a route that validates by hand. */
export function validated<T extends z.ZodType>(target: 'param' | 'header', schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) rejectInvalid(target, result.error.issues);
  return result.data;
}

export function newRouter() {
  return new OpenAPIHono<AppEnv>({ defaultHook });
}
