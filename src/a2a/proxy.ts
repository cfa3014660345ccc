import { recordActivities, type ActivityRecord } from '../activity/record';
import { appendActivity } from '../activity/outbox';
import type { PendingActivity } from '../activity/pending';
import { identifyBearer, touchWorkspaceToken } from '../auth/credentials';
import { ApiError, datastoreUnavailable } from '../errors';
import { MiB } from '../lib/body';
import { parseStorableJson } from '../lib/json-text';
import type { RequestScope } from '../lib/request-scope';
import { canCommunicate, type ChainRow } from './access';
import { resolveCaller } from './caller';
import { deliver, FAILURE_TEXT, resolveAgentUrl, RETRY_AFTER_BUSY, RETRY_AFTER_DEAD, type Delivery } from './deliver';
import { AGENT_CALLER_CEILING_MS, CANVAS_CALLER_CEILING_MS } from './dispatch';
import { normalizeA2ARequest, type JsonObject } from './normalize';
import { cachedProxyContext, noteTokenTouched } from './context-cache';
import { deliveryModeOf, hasCapability, type TargetRow } from './proxy-context';
import { enqueue } from './queue';
import { tokenUsageOf } from '../usage/token-usage';

export type ProxyRequest = {
  targetId: string;
  /** The parsed body (already through the JSON gate); undefined when it was not JSON. */
  body: unknown;
  headerCaller: string | null;
  bearer: string | undefined;
  /** Caller-supplied X-Timeout in seconds (already validated), overriding the class ceiling. */
  timeoutSeconds: number | undefined;
};

/**
 * POST /workspaces/:id/a2a after the body has been read: identity, then `forwardA2A` (hierarchy → budget →
 * normalise → poll short-circuit → URL → dispatch → classify). At most one DB round trip precedes
 * the dispatch, none while this isolate's context cache holds the answer (context-cache.ts);
 * activity rows are written after the response.
 */
export async function proxyA2A(scope: RequestScope, req: ProxyRequest): Promise<Response> {
  const started = Date.now();
  const bearer = await identifyBearer(scope.env, req.bearer);
  let context;
  try {
    context = await cachedProxyContext(scope, {
      targetId: req.targetId,
      headerCaller: req.headerCaller,
      workspaceTokenHash: bearer.kind === 'workspace' ? bearer.hash : null,
      orgTokenHash: bearer.kind === 'org' ? bearer.hash : null,
    });
  } catch (err) {
    // Fails loud: without the row we know neither the mode nor the URL, and guessing "poll"
    // would turn a datastore blip into silently dropped messages.
    throw datastoreUnavailable(err);
  }
  const callerId = resolveCaller({ targetId: req.targetId, headerCaller: req.headerCaller, bearer: bearer.kind, context });
  if (context.workspaceToken && touchWorkspaceToken(scope, context.workspaceToken.id, context.workspaceToken.last_used_at)) noteTokenTouched(context);
  const forwarded = await forwardA2A(scope, {
    target: context.target,
    chains: context.chains,
    callerId,
    body: req.body,
    deadlineMs: req.timeoutSeconds ? req.timeoutSeconds * 1000 : undefined,
    started,
  });
  switch (forwarded.kind) {
    case 'poll_queued':
      return Response.json({ status: 'queued', delivery_mode: 'poll', method: forwarded.method });
    case 'delivered':
      return new Response(NULL_BODY_STATUSES.has(forwarded.status) ? null : forwarded.body, {
        status: forwarded.status,
        headers: { 'Content-Type': forwarded.contentType ?? 'application/json' },
      });
    case 'enqueued':
      return Response.json(
        { queued: true, queue_id: forwarded.queueId, queue_depth: forwarded.depth, message: 'workspace agent busy — request queued for delivery when it has capacity' },
        { status: 202 },
      );
  }
}

/** Where a forwarded request went; every other ending is an ApiError with a fixed text. */
export type Forwarded =
  | { kind: 'poll_queued'; method: string }
  | { kind: 'delivered'; status: number; body: Uint8Array; contentType: string | null }
  | { kind: 'enqueued'; queueId: string; depth: number };

/**
 * Everything after the caller is known, for the proxy route and for platform-initiated sends (a
 * delegation): hierarchy → budget → normalise → poll short-circuit → URL → dispatch → classify,
 * with both feeds' activity rows. `callerId` null is the canvas class.
 */
export async function forwardA2A(
  scope: RequestScope,
  args: {
    target: TargetRow | null;
    chains: ChainRow[];
    callerId: string | null;
    body: unknown;
    deadlineMs?: number;
    started?: number;
    /**
     * A send that must happen at most once (a delegation): wait for the agent's answer for the
     * whole deadline, and treat running out of time as a final "outcome unknown", never as busy
     * (a busy send is queued and sent again, and an agent that took the request may be working).
     */
    atMostOnce?: boolean;
  },
): Promise<Forwarded> {
  const { target, callerId } = args;
  const started = args.started ?? Date.now();
  if (!target) throw new ApiError(404, 'workspace not found');
  if (callerId && callerId !== target.id && !canCommunicate(callerId, target.id, args.chains)) {
    throw new ApiError(403, 'access denied: workspaces cannot communicate per hierarchy rules');
  }
  if (target.budget_limit !== null && Number(target.monthly_spend) >= Number(target.budget_limit)) {
    throw new ApiError(402, 'workspace budget limit exceeded');
  }

  const normalized = normalizeA2ARequest(args.body);
  if (!normalized.ok) {
    const { error, ...rest } = normalized.body;
    throw new ApiError(normalized.status, String(error), rest);
  }
  const { payload, method } = normalized;

  if (deliveryModeOf(target) === 'poll') {
    await queueForPoll(scope, target, callerId, method, payload);
    return { kind: 'poll_queued', method };
  }

  const url = resolveAgentUrl(scope, target);
  const body = JSON.stringify(payload);
  const deadline = args.deadlineMs ?? (callerId ? AGENT_CALLER_CEILING_MS : CANVAS_CALLER_CEILING_MS);
  const outcome = await deliver(scope, target, url, body, deadline, args.atMostOnce ? deadline : undefined);
  const durationMs = Date.now() - started;
  logExchange(scope, { target, callerId, method, payload, outcome, durationMs });

  switch (outcome.kind) {
    case 'ok':
      return { kind: 'delivered', status: outcome.status, body: outcome.body, contentType: outcome.contentType };
    case 'agent_error':
      // The agent's own error body stays with the agent: it may carry stack traces or paths. Its
      // status is relayed when it is an error status; a 3xx (redirects are not followed, a 304
      // has no body to send) becomes a 502.
      throw new ApiError((outcome.status >= 400 && outcome.status <= 599 ? outcome.status : 502) as 400, 'workspace agent returned an error', { upstream_status: outcome.status });
    case 'restarting':
      throw new ApiError(503, 'workspace agent unreachable — restart triggered', { restarting: true, retry_after: RETRY_AFTER_DEAD }, { 'Retry-After': String(RETRY_AFTER_DEAD) });
    case 'body_failed':
      throw new ApiError(502, outcome.reason === 'too_large' ? 'agent response too large' : 'failed to read agent response', {
        delivery_confirmed: outcome.status >= 200 && outcome.status < 400,
      });
    case 'unreachable':
      throw new ApiError(502, 'failed to reach workspace agent');
    case 'busy':
      if (args.atMostOnce && outcome.reason === 'timeout') throw new ApiError(504, 'agent did not answer in time; the outcome is unknown');
      return enqueueBusy(scope, target, callerId, method, payload);
  }
}

const NULL_BODY_STATUSES = new Set([204, 205, 304]);

/** Poll-mode agents have no URL: the activity row IS the delivery, so it is written before 200. */
async function queueForPoll(scope: RequestScope, target: TargetRow, callerId: string | null, method: string, payload: JsonObject): Promise<void> {
  try {
    await recordActivities(scope, [
      { workspaceId: target.id, activityType: 'a2a_receive', sourceId: callerId, targetId: target.id, method, summary: `${method || 'message'} queued for poll`, requestBody: payload },
    ]);
  } catch (err) {
    console.error('poll enqueue failed', err);
    throw new ApiError(500, 'failed to queue message');
  }
}

async function enqueueBusy(scope: RequestScope, target: TargetRow, callerId: string | null, method: string, payload: JsonObject): Promise<Forwarded> {
  const busy = { busy: true, retry_after: RETRY_AFTER_BUSY };
  // The agent's SDK keeps its own session queue; a second platform queue would double-buffer it.
  if (hasCapability(target, 'session')) {
    throw new ApiError(503, 'workspace agent busy — retry later', { ...busy, native_session: true }, { 'Retry-After': String(RETRY_AFTER_BUSY) });
  }
  try {
    const queued = await enqueue(scope.db, { workspaceId: target.id, callerId, method, payload });
    return { kind: 'enqueued', queueId: queued.id, depth: queued.depth };
  } catch (err) {
    console.error('a2a enqueue failed', err);
    throw new ApiError(503, 'workspace agent busy — retry later', busy, { 'Retry-After': String(RETRY_AFTER_BUSY) });
  }
}

/**
 * Activity rows for both feeds, after the response, through the target's write-behind (durable
 * once appended; flushed in batches). Error details are fixed texts.
 */
function logExchange(
  scope: RequestScope,
  x: { target: TargetRow; callerId: string | null; method: string; payload: JsonObject; outcome: Delivery; durationMs: number },
): void {
  const { target, callerId, method, outcome } = x;
  scope.defer('log a2a exchange', async () => {
    const fields = exchangeFields(x);
    const shared = recordable(fields, outcome);
    const summary = `${method || 'message'} → ${target.name}`;
    const answered = outcome.kind === 'ok';
    const records: PendingActivity['records'] = [
      {
        id: crypto.randomUUID(),
        workspaceId: target.id,
        activityType: 'a2a_receive',
        summary,
        // Go sends A2A_RESPONSE to canvas callers only: an agent caller reads its answer from the response.
        announceResponse: answered && !callerId,
        tokenUsage: answered ? tokenUsageOf(fields.responseBody) : undefined,
      },
    ];
    if (callerId && callerId !== target.id) records.push({ id: crypto.randomUUID(), workspaceId: callerId, activityType: 'a2a_send', summary });
    await appendActivity(scope.env, target.id, { shared, records, ...(outcome.kind === 'ok' && callerId ? { outboundFrom: callerId } : {}) });
  });
}

/** What every activity row about one delivery says, whichever feed it lands in (the queue drain writes them too). */
export function exchangeFields(x: {
  target: Pick<TargetRow, 'id'>;
  callerId: string | null;
  method: string | null;
  payload: JsonObject;
  outcome: Delivery;
  durationMs: number;
}): Omit<ActivityRecord, 'workspaceId' | 'activityType' | 'summary'> {
  const { outcome } = x;
  const responseBody = outcome.kind === 'ok' ? parseStorableJson(outcome.body) : null;
  return {
    sourceId: x.callerId,
    targetId: x.target.id,
    method: x.method,
    requestBody: x.payload,
    responseBody,
    toolTrace: toolTraceOf(responseBody),
    status: outcome.kind === 'ok' ? 'ok' : 'error',
    errorDetail: outcome.kind === 'ok' ? null : FAILURE_TEXT[outcome.kind],
    durationMs: x.durationMs,
  };
}

/**
 * Answers up to this size are recorded in the feeds whole; a larger one (up to the 10 MiB relay
 * cap) is relayed whole but recorded as a fixed stub with its size, and without its tool trace.
 * Each body sits in two rows of one statement, escaped again inside Neon's JSON request, and
 * Neon's SQL-over-HTTP refuses requests over 10 MiB: a flush that can never succeed would hold
 * the whole feed behind it. The request cap (1 MiB) keeps requests within the same bound.
 */
export const RECORDED_ANSWER_MAX_BYTES = MiB;

/** `fields` as the feeds record them: an answer over the cap becomes the stub (usage is taken before). */
export function recordable<T extends { responseBody?: unknown; toolTrace?: unknown }>(fields: T, outcome: Delivery): T {
  if (outcome.kind !== 'ok' || outcome.body.byteLength <= RECORDED_ANSWER_MAX_BYTES) return fields;
  return { ...fields, responseBody: { omitted: 'answer larger than 1 MiB is not recorded', bytes: outcome.body.byteLength }, toolTrace: null };
}

function toolTraceOf(body: unknown): unknown {
  const trace = (body as { result?: { metadata?: { tool_trace?: unknown } } } | null)?.result?.metadata?.tool_trace;
  return trace ?? null;
}
