import { createRoute, z } from '@hono/zod-openapi';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { WorkspaceIdParam } from '../api/schemas';
import { authorizeAdmin } from '../auth/guards';
import { ApiError } from '../errors';
import { publishEvent } from '../events/publish';
import { KiB } from '../lib/body';
import { headBytes, plainLine, plainLog, tailBytes } from '../lib/operator-text';
import { markProvisionFailed } from '../workspaces/lifecycle';
import { workspaceIsLive } from '../workspaces/queries';

// SPEC §17 ops endpoint: the control plane's bootstrap watcher saw a workspace's runtime crash
// before the agent ever registered. Without it the workspace sits in `provisioning` until the
// timeout sweep (10-30 minutes); with it the canvas shows the failure, and why, at once.

export const bootstrapRoutes = newRouter();

/** What is kept of the log: the end, where the traceback is (Go: 8 KiB). */
export const LOG_TAIL_BYTES = 8192;
export const LOG_TAIL_TRUNCATED = '...(truncated)...\n';
/** The error is a one-line banner. */
export const MAX_BOOTSTRAP_ERROR = 1000;
/** The error (≤ 1,000 characters: ≤ 4 KiB), a blank line and the whole kept tail: the tail is never cut here, it is only stored. */
export const LAST_ERROR_BYTES = 4 * 1024 + 2 + LOG_TAIL_BYTES + LOG_TAIL_TRUNCATED.length;
const DEFAULT_ERROR = 'bootstrap failed — see log_tail';
/** A watcher may send more log than is kept; the body cap leaves room for JSON escaping of a 32 KiB tail. */
const MAX_LOG_TAIL_CHARS = 32 * 1024;

const BootstrapFailed = z
  .object({
    error: z.string().max(MAX_BOOTSTRAP_ERROR).optional().openapi({ description: `One line for the canvas banner (blank: "${DEFAULT_ERROR}")` }),
    log_tail: z
      .string()
      .max(MAX_LOG_TAIL_CHARS)
      .optional()
      .openapi({ description: `The end of the bootstrap log; only its last ${LOG_TAIL_BYTES} bytes are kept, after "${LOG_TAIL_TRUNCATED.trim()}"` }),
  })
  .openapi('BootstrapFailed');

const BootstrapFailedResult = z
  .object({
    ok: z.literal(true),
    no_change: z.literal(true).optional().openapi({ description: 'The workspace was no longer provisioning (already online or failed): nothing written, nothing broadcast' }),
  })
  .openapi('BootstrapFailedResult');

bootstrapRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/admin/workspaces/{id}/bootstrap-failed',
    tags: ['workspaces'],
    summary: "The control plane's bootstrap watcher reports a workspace whose runtime crashed before registering (operators only)",
    description:
      'A workspace still `provisioning` becomes `failed`, its last error set to the error and the log tail, and ' +
      'WORKSPACE_PROVISION_FAILED `{error, source: "bootstrap_watcher", log_tail_bytes}` is broadcast (the tail ' +
      'itself only in the last error, which operators read: a boot log can hold secrets). Any other live ' +
      'workspace is left alone (`no_change`), so a late or repeated report never overrides a registration.',
    security: bearerSecurity,
    middleware: [readJsonBody(64 * KiB)] as const,
    request: { params: WorkspaceIdParam, body: jsonBody(BootstrapFailed) },
    responses: { 200: json(BootstrapFailedResult, 'Reported (or nothing to change)'), ...errors(400, 401, 404, 413, 503) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const body = c.req.valid('json');
    await authorizeAdmin(c);
    const report = bootstrapReport(body);
    const db = c.var.scope.db;
    if (!(await markProvisionFailed(db, id, headBytes(`${report.error}\n\n${report.log_tail}`, LAST_ERROR_BYTES)))) {
      if (!(await workspaceIsLive(db, id))) throw new ApiError(404, 'workspace not found');
      return c.json({ ok: true as const, no_change: true as const }, 200);
    }
    // Broadcasts carry fixed texts, never caller input: subscribers include agents' tokens, and a
    // caller's text there would let one agent write into other workspaces' canvases. The error
    // line is the exception on purpose: only an operator (the control plane, with the admin
    // credential) can call this route, relaying the failure it diagnosed, and showing it is the
    // route's point; it is made plain and bounded first. The log tail is not broadcast (Go did):
    // a boot log can hold secrets, and a workspace token's subscription reaches its parent's and
    // siblings' events. It is kept in the workspace's last error, which only operators read.
    publishEvent(c.var.scope, 'WORKSPACE_PROVISION_FAILED', id, { error: report.error, source: 'bootstrap_watcher', log_tail_bytes: utf8Bytes(report.log_tail) });
    return c.json({ ok: true as const }, 200);
  },
);

/** The report as the canvas gets it: one plain line of error, and the plain end of the log. */
const utf8Bytes = (text: string) => new TextEncoder().encode(text).length;

function bootstrapReport(body: z.output<typeof BootstrapFailed>): { error: string; log_tail: string } {
  return {
    error: plainLine(body.error ?? '') || DEFAULT_ERROR,
    log_tail: tailBytes(plainLog(body.log_tail ?? ''), LOG_TAIL_BYTES, LOG_TAIL_TRUNCATED),
  };
}
