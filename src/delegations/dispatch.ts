import { forwardA2A } from '../a2a/proxy';
import { loadProxyContext } from '../a2a/proxy-context';
import type { QueueItem } from '../a2a/queue';
import type { Bindings } from '../env';
import { ApiError } from '../errors';
import { publishEvent } from '../events/publish';
import { isUuid } from '../lib/ids';
import { parseStorableJson } from '../lib/json-text';
import { RequestScope } from '../lib/request-scope';
import { claimDelegation, isTerminal, settleDelegation, type ClaimedDelegation, type DelegationRow, type Settlement } from './queries';

/** Longest text kept from an answer (and from a source's own update). */
export const PREVIEW_MAX_CHARS = 4096;

/**
 * A dispatch runs inside one alarm invocation (15 minutes of wall time): the agent call ends by 12
 * minutes, leaving room to record the outcome. The whole of it may be spent waiting for the
 * answer; running out is a final failure ("outcome unknown"), never a busy re-queue, because the
 * agent may be working on it. Only an agent that refused the connection (reset) is queued.
 */
export const DISPATCH_DEADLINE_MS = 12 * 60_000;

/** Fixed texts for failures the proxy pipeline does not name itself. */
export const DELEGATION_FAILURE = {
  dispatch: 'delegation dispatch failed',
  interrupted: 'delegation dispatch interrupted; the outcome is unknown',
  rpcError: 'agent answered with a JSON-RPC error',
  queueGaveUp: 'agent busy; the queued delivery gave up',
} as const;

/**
 * Hands a new delegation to its own dispatcher object. Once this resolves the dispatch is
 * durable: the object's alarm runs it, and retries it when the run fails before recording.
 */
export async function scheduleDelegation(env: Bindings, delegationId: string): Promise<void> {
  const ns = env.DELEGATION_DISPATCHER;
  await ns.get(ns.idFromName(delegationId)).start(delegationId);
}

/**
 * One dispatch, from the dispatcher's alarm. Delivery is at most once: only this delegation's own
 * dispatcher claims it (pending → dispatched), so finding it still `dispatched` means an earlier
 * run of this alarm died mid-call, and it is failed rather than sent again. Throws only when the
 * datastore fails around the claim or the record (the alarm then retries).
 */
export async function runDelegation(env: Bindings, delegationId: string): Promise<void> {
  const scope = new RequestScope(env);
  try {
    const claimed = await claimDelegation(scope.db, delegationId);
    const settled = claimed
      ? await settleDelegation(scope.db, delegationId, await dispatch(scope, claimed))
      : await settleDelegation(scope.db, delegationId, { status: 'failed', error: DELEGATION_FAILURE.interrupted }, { from: ['dispatched'] });
    if (settled) announceSettled(scope, settled);
  } finally {
    await scope.close();
  }
}

/** An A2A `message/send` from source to target through the proxy's pipeline (hierarchy, budget, poll, busy queue, activity rows). */
async function dispatch(scope: RequestScope, d: ClaimedDelegation): Promise<Settlement> {
  try {
    const context = await loadProxyContext(scope, { targetId: d.target_id, headerCaller: d.source_id, workspaceTokenHash: null, orgTokenHash: null });
    const forwarded = await forwardA2A(scope, {
      target: context.target,
      chains: context.chains,
      callerId: d.source_id,
      body: delegationMessage(d),
      deadlineMs: DISPATCH_DEADLINE_MS,
      atMostOnce: true,
    });
    switch (forwarded.kind) {
      // A poll agent reads it from its inbox and answers with a new message: not an answer yet.
      case 'poll_queued':
        return { status: 'queued' };
      case 'enqueued':
        return { status: 'queued', queueId: forwarded.queueId };
      case 'delivered':
        return settlementOfAnswer(parseStorableJson(forwarded.body));
    }
  } catch (err) {
    // ApiError texts are the platform's own fixed texts, never the agent's.
    if (err instanceof ApiError) return { status: 'failed', error: err.message };
    console.error('delegation dispatch failed', d.id, err);
    return { status: 'failed', error: DELEGATION_FAILURE.dispatch };
  }
}

/** The message a delegation sends; its id doubles as messageId, so a retried enqueue is the same queue item. */
export function delegationMessage(d: Pick<ClaimedDelegation, 'id' | 'task'>) {
  return {
    jsonrpc: '2.0',
    id: d.id,
    method: 'message/send',
    params: { message: { role: 'user', messageId: d.id, parts: [{ kind: 'text', text: d.task }], metadata: { delegation_id: d.id } } },
  };
}

/**
 * What a delivered answer means for the delegation. A JSON-RPC error arrives with HTTP 200, so
 * it is told apart here; anything else the agent answered completes the delegation.
 */
export function settlementOfAnswer(body: unknown): Settlement {
  if (isObject(body) && 'error' in body && !('result' in body)) return { status: 'failed', error: DELEGATION_FAILURE.rpcError };
  return { status: 'completed', responsePreview: previewOf(body) };
}

/**
 * The answer's text: the message's text parts (or a task's artifacts and status message), else a
 * `text` field, else the result as JSON (as the Go platform kept the raw answer); bounded.
 */
export function previewOf(body: unknown): string | null {
  const result = isObject(body) && 'result' in body ? body.result : body;
  if (result === null || result === undefined) return null;
  if (typeof result === 'string') return bounded(result);
  if (!isObject(result)) return bounded(JSON.stringify(result));
  const artifacts = Array.isArray(result.artifacts) ? result.artifacts.slice(0, MAX_SCANNED) : [];
  const status = isObject(result.status) && isObject(result.status.message) ? result.status.message : undefined;
  const texts = [result.parts, ...artifacts.map((a) => (isObject(a) ? a.parts : undefined)), status?.parts].flatMap(textsOf);
  if (texts.length > 0) return bounded(texts.join('\n'));
  if (typeof result.text === 'string') return bounded(result.text);
  return bounded(JSON.stringify(result));
}

const MAX_SCANNED = 256;

function textsOf(parts: unknown): string[] {
  if (!Array.isArray(parts)) return [];
  return parts
    .slice(0, MAX_SCANNED)
    .filter((p): p is { text: string } => isObject(p) && typeof p.text === 'string' && (p.kind ?? p.type ?? 'text') === 'text')
    .map((p) => p.text);
}

/** At most PREVIEW_MAX_CHARS, never ending in half a surrogate pair. */
export function bounded(text: string, max = PREVIEW_MAX_CHARS): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** DELEGATION_COMPLETE to the source, once a delegation reaches a terminal status. */
export function announceSettled(scope: RequestScope, row: Pick<DelegationRow, 'delegation_id' | 'source_id' | 'target_id' | 'status'>): void {
  if (!isTerminal(row.status)) return;
  publishEvent(scope, 'DELEGATION_COMPLETE', row.source_id, {
    delegation_id: row.delegation_id,
    source_id: row.source_id,
    target_id: row.target_id,
    status: row.status,
  });
}

/**
 * The queue drain finished an item that carried a delegation id (from its message metadata):
 * the delegation ends with it. Only a delegation its own sender made to this target matches, so
 * a message cannot settle someone else's delegation by naming it. Never throws: the item's own
 * bookkeeping is done and must not be retried because of this.
 */
export async function settleQueuedDelegation(
  scope: RequestScope,
  item: Pick<QueueItem, 'delegation_id' | 'caller_id'>,
  targetId: string,
  settlement: Settlement,
): Promise<void> {
  if (!item.delegation_id || !item.caller_id || !isUuid(item.delegation_id)) return;
  try {
    const settled = await settleDelegation(scope.db, item.delegation_id.toLowerCase(), settlement, { sourceId: item.caller_id, targetId });
    if (settled) announceSettled(scope, settled);
  } catch (err) {
    console.error('queued delegation not settled', item.delegation_id, err);
  }
}
