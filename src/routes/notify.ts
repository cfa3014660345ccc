import { createRoute, z } from '@hono/zod-openapi';
import { recordActivities } from '../activity/record';
import { readJsonBody } from '../api/json-body';
import { bearerSecurity, errors, json, jsonBody, newRouter } from '../api/openapi';
import { NO_CONTROL_CHARS, WorkspaceIdParam } from '../api/schemas';
import { authorizeWorkspace } from '../auth/guards';
import { ApiError } from '../errors';
import { publishEvent } from '../events/publish';
import { KiB } from '../lib/body';
import { userMessagingOf } from '../workspaces/queries';

export const notifyRoutes = newRouter();

const MAX_NOTIFY_MESSAGE = 65_536;
const MAX_NOTIFY_ATTACHMENTS = 32;
const SUMMARY_CHARS = 80;

/**
 * Where an attachment may point: what the canvas can resolve without following the agent
 * anywhere else. http(s) links; a path on the platform itself (`/…`, but not `//host` nor `/\host`,
 * which browsers read as another origin); and the two schemes `POST /workspaces/:id/chat/uploads`
 * hands back, which the runtime and the channel plugin pass through verbatim
 * (`workspace:/workspace/.molecule/chat-uploads/<file>`, and `platform-pending:<workspace>/<file>`
 * for poll-mode uploads). No `javascript:`, `data:` or `file:` links in a user's chat.
 */
const ATTACHMENT_URI =
  /^(?:https?:\/\/[^\s\\/?#\u0000-\u001f\u007f-\u009f\u2028\u2029]+(?:[/?#][^\s\\\u0000-\u001f\u007f-\u009f\u2028\u2029]*)?|\/(?![/\\])[^\s\\\u0000-\u001f\u007f-\u009f\u2028\u2029]*|workspace:\/[^\s\\\u0000-\u001f\u007f-\u009f\u2028\u2029]*|platform-pending:[0-9a-f-]{36}\/[^\s\\/\u0000-\u001f\u007f-\u009f\u2028\u2029]+)$/i;

const Attachment = z
  .object({
    uri: z.string().max(2048).regex(ATTACHMENT_URI, 'must be an http(s) URL, a platform path, or a workspace: / platform-pending: upload URI'),
    name: z.string().min(1).max(255).regex(NO_CONTROL_CHARS, 'must not contain control characters'),
    mimeType: z.string().max(255).regex(NO_CONTROL_CHARS, 'must not contain control characters').optional(),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .openapi('NotifyAttachment');
type Attachment = z.output<typeof Attachment>;

// Unknown keys are dropped, not refused: the runtime's heartbeat adds `type: "delegation_result"`.
// A body without `message` is a 400 like Go's, including the `{type: "delegation_complete", …}`
// notices of the runtime's builtin delegation tool and the MCP server: they have no text for the
// user's chat, their senders carry no bearer (so cannot be accepted anyway), and the outcome they
// announce is already in the delegation's own record.
const Notify = z
  .object({
    message: z.string().min(1).max(MAX_NOTIFY_MESSAGE),
    attachments: z.array(Attachment).max(MAX_NOTIFY_ATTACHMENTS).optional(),
  })
  .openapi('Notify');

const TalkToUserDisabled = z
  .object({ error: z.literal('talk_to_user_disabled'), hint: z.string() })
  .openapi('TalkToUserDisabled');

notifyRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/workspaces/{id}/notify',
    tags: ['activity'],
    summary: "An agent's message to its canvas user: recorded in the feed (method 'notify') and broadcast as AGENT_MESSAGE",
    security: bearerSecurity,
    middleware: [readJsonBody(512 * KiB)] as const,
    request: { params: WorkspaceIdParam, body: jsonBody(Notify) },
    responses: {
      200: json(z.object({ status: z.literal('sent') }), 'Sent'),
      403: json(TalkToUserDisabled, 'This workspace may not message the user: forward the update to a parent with delegate_task'),
      ...errors(400, 401, 404, 413),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const input = c.req.valid('json');
    await authorizeWorkspace(c, id);
    const scope = c.var.scope;
    const sender = await userMessagingOf(scope.db, id);
    if (!sender) throw new ApiError(404, 'workspace not found');
    if (!sender.talkToUserEnabled) {
      throw new ApiError(403, 'talk_to_user_disabled', {
        hint: 'This workspace is not allowed to send messages directly to the user. Forward your update to a parent workspace using delegate_task — they may be able to reach the user.',
      });
    }

    const attachments = (input.attachments ?? []).map(normalizeAttachment);
    await recordActivities(scope, [
      {
        workspaceId: id,
        activityType: 'a2a_receive',
        sourceId: null,
        targetId: id,
        method: 'notify',
        summary: `Agent message: ${Array.from(input.message).slice(0, SUMMARY_CHARS).join('')}`,
        // The canvas rebuilds its chat history from this row: the text, then one file part per attachment.
        responseBody: {
          result: input.message,
          ...(attachments.length > 0 ? { parts: attachments.map((file) => ({ kind: 'file', file })) } : {}),
        },
      },
    ]);
    // The agent's text is this event's whole point: the canvas renders it as the agent's chat bubble.
    publishEvent(scope, 'AGENT_MESSAGE', id, {
      message: input.message,
      workspace_id: id,
      name: sender.name,
      ...(attachments.length > 0 ? { attachments } : {}),
    });
    return c.json({ status: 'sent' as const }, 200);
  },
);

/** Fixed key order, and an empty mimeType (Go's `omitempty`) means none. */
function normalizeAttachment(a: Attachment): Attachment {
  return { uri: a.uri, name: a.name, ...(a.mimeType ? { mimeType: a.mimeType } : {}), ...(a.size !== undefined ? { size: a.size } : {}) };
}
