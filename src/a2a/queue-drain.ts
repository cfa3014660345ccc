import { coordinatorOf } from '../coordinator';
import { eq, sql } from 'drizzle-orm';
import { recordActivities, type ActivityRecord } from '../activity/record';
import { workspaces } from '../db/schema';
import type { Bindings } from '../env';
import { settleQueuedDelegation, settlementOfAnswer } from '../delegations/dispatch';
import { ApiError } from '../errors';
import { RequestScope, type Db } from '../lib/request-scope';
import { deliver, FAILURE_TEXT, resolveAgentUrl, type Delivery } from './deliver';
import { AGENT_CALLER_CEILING_MS, CANVAS_CALLER_CEILING_MS } from './dispatch';
import { exchangeFields, recordable } from './proxy';
import { loadProxyContext, type TargetRow } from './proxy-context';
import { tokenUsageOf } from '../usage/token-usage';
import { claimNext, markCompleted, markFailed, releaseUncounted, type QueueItem } from './queue';

/*
 * Budget of one drain run, which is one coordinator alarm invocation (15 minutes of wall time, a
 * per-invocation subrequest budget — 1,000 on Workers Paid — and 6 simultaneous outgoing
 * connections). A run that spends its budget with items left is continued by a fresh alarm.
 *
 * - Items: a delivered item costs 2 subrequests (the agent fetch, the ACTIVITY_LOGGED broadcast),
 *   a failed one at most 3 (the fetch, the reset probe, the provisioner's liveness check), plus a
 *   few one-off calls for the failure that stops a run. The datastore costs one socket per pooled
 *   connection for the whole run (one RequestScope), not one per query. 100 items stay under a
 *   third of the subrequest budget in the worst case.
 * - Claim window: no new claim after 2 minutes, so other alarm work (a restart requested during
 *   the run) and the next run wait at most for the deliveries already in flight.
 * - Deadline: every delivery ends by 12 minutes into the run (its ceiling is cut to what is
 *   left), leaving 3 minutes under the alarm's wall limit to record outcomes and close the pool.
 *   A queued agent call may therefore think for at least 10 minutes, not the proxy's 30.
 * - Lanes: at most 3 deliveries at once, however high max_concurrent_tasks is: 3 agent
 *   connections plus one pooled datastore socket per lane stay within the 6 simultaneous
 *   connections, and at most 3 responses (up to 10 MiB each) are held at once.
 */
export const DRAIN_MAX_ITEMS_PER_RUN = 100;
const CLAIM_WINDOW_MS = 2 * 60_000;
const RUN_DEADLINE_MS = 12 * 60_000;
const MAX_LANES = 3;

const UNKNOWN_FAILURE = 'unknown drain dispatch error';

/**
 * Why a run stopped. Only `budget` means "continue without a heartbeat"; after `busy` and
 * `unavailable` the agent's next heartbeat with spare capacity asks again.
 */
export type DrainStop = 'empty' | 'budget' | 'busy' | 'unavailable' | 'error';

type Run = {
  scope: RequestScope;
  workspaceId: string;
  target: TargetRow;
  url: string;
  claimUntil: number;
  deliverUntil: number;
  /** Items this run has claimed: it never claims one twice. */
  tried: string[];
  claims: number;
  stop: DrainStop | null;
};

/**
 * Heartbeat reported spare capacity: hand the drain to the workspace's coordinator, whose alarm
 * can wait out a long agent call that a request's waitUntil could not.
 */
export function drainQueueInBackground(scope: RequestScope, workspaceId: string): void {
  scope.defer('request queue drain', () => coordinatorOf(scope.env, workspaceId).requestDrain());
}

/**
 * One drain run: delivers queued items, up to the agent's spare capacity at a time, until the
 * queue is empty, the agent turns one away, or the run's budget is spent. Never throws: the
 * caller is an alarm, and a rethrow would only retry-storm a failing datastore.
 */
export async function drainQueue(env: Bindings, workspaceId: string): Promise<DrainStop> {
  const scope = new RequestScope(env);
  try {
    return await runDrain(scope, workspaceId, Date.now());
  } catch (err) {
    console.error('queue drain failed', workspaceId, err);
    return 'error';
  } finally {
    await scope.close();
  }
}

async function runDrain(scope: RequestScope, workspaceId: string, startedAt: number): Promise<DrainStop> {
  const [{ target }, lanes] = await Promise.all([
    loadProxyContext(scope, { targetId: workspaceId, headerCaller: null, workspaceTokenHash: null, orgTokenHash: null }),
    spareCapacity(scope.db, workspaceId),
  ]);
  const agent = reachableAgent(scope, target);
  if ('reason' in agent) return failNext(scope, workspaceId, agent.reason);
  const run: Run = {
    scope,
    workspaceId,
    ...agent,
    claimUntil: startedAt + CLAIM_WINDOW_MS,
    deliverUntil: startedAt + RUN_DEADLINE_MS,
    tried: [],
    claims: 0,
    stop: null,
  };
  await Promise.all(Array.from({ length: Math.min(lanes, MAX_LANES) }, () => lane(run)));
  return run.stop ?? 'empty';
}

/** Deliveries the agent can take now: its limit minus what it reported running, at least one (it asked). */
async function spareCapacity(db: Db, workspaceId: string): Promise<number> {
  const [row] = await db
    .select({ spare: sql<number>`greatest(1, ${workspaces.maxConcurrentTasks} - ${workspaces.activeTasks})` })
    .from(workspaces)
    .where(eq(workspaces.id, workspaceId));
  return Number(row?.spare ?? 1);
}

function reachableAgent(scope: RequestScope, target: TargetRow | null): { target: TargetRow; url: string } | { reason: string } {
  if (!target) return { reason: 'workspace not found' };
  try {
    return { target, url: resolveAgentUrl(scope, target) };
  } catch (err) {
    return { reason: err instanceof ApiError ? err.message : UNKNOWN_FAILURE };
  }
}

/**
 * No agent to deliver to: one item takes the attempt and carries the reason (so a caller polling
 * its item sees why, and a workspace that never gets a URL runs its items into the attempts cap);
 * the rest wait.
 */
async function failNext(scope: RequestScope, workspaceId: string, reason: string): Promise<DrainStop> {
  const item = await claimNext(scope.db, workspaceId);
  if (!item) return 'empty';
  await failAttempt(scope, workspaceId, item, reason);
  return 'unavailable';
}

/** One failed attempt; when it was the item's last, a delegation the item carries fails with it. */
async function failAttempt(scope: RequestScope, workspaceId: string, item: QueueItem, reason: string): Promise<void> {
  if (await markFailed(scope.db, item.id, reason)) await settleQueuedDelegation(scope, item, workspaceId, { status: 'failed', error: reason });
}

/** One delivery slot: claims and delivers one item at a time until the run stops. */
async function lane(run: Run): Promise<void> {
  try {
    while (!run.stop) {
      if (run.claims >= DRAIN_MAX_ITEMS_PER_RUN || Date.now() >= run.claimUntil) return halt(run, 'budget');
      // Counted before the await, so lanes claiming side by side cannot overshoot the budget.
      run.claims += 1;
      const item = await claimNext(run.scope.db, run.workspaceId, run.tried);
      if (!item) return halt(run, 'empty');
      run.tried.push(item.id);
      const next = await deliverItem(run, item);
      if (next !== 'continue') halt(run, next);
    }
  } catch (err) {
    // The datastore failed: stop claiming. Deliveries in flight in other lanes finish; an item
    // left `dispatched` is put back by the cron sweeper (at-least-once).
    console.error('queue drain lane failed', run.workspaceId, err);
    halt(run, 'error');
  }
}

/** The first reason wins: it is what the run stopped for; the other lanes merely follow. */
function halt(run: Run, reason: DrainStop): void {
  run.stop ??= reason;
}

async function deliverItem(run: Run, item: QueueItem): Promise<'continue' | DrainStop> {
  const started = Date.now();
  const ceiling = item.caller_id ? AGENT_CALLER_CEILING_MS : CANVAS_CALLER_CEILING_MS;
  try {
    const outcome = await deliver(run.scope, run.target, run.url, JSON.stringify(item.body), Math.min(ceiling, run.deliverUntil - started));
    return await settle(run, item, outcome, Date.now() - started);
  } catch (err) {
    // This item's bookkeeping failed (say, a response the datastore rejects). It takes an attempt
    // like any failed delivery, so it reaches the cap instead of blocking the queue; the run goes on.
    console.error('queue item drain failed', item.id, err);
    await failAttempt(run.scope, run.workspaceId, item, UNKNOWN_FAILURE);
    return 'continue';
  }
}

/**
 * Records the outcome and says whether the run goes on. Failures of the item itself (the agent
 * rejected this request, or its answer could not be read) do; an agent that is busy, gone or
 * failing as a whole stops the run, which would otherwise spend an attempt of every queued item
 * in seconds.
 */
async function settle(run: Run, item: QueueItem, outcome: Delivery, durationMs: number): Promise<'continue' | DrainStop> {
  const db = run.scope.db;
  switch (outcome.kind) {
    case 'ok': {
      const fields = exchangeFields({ target: run.target, callerId: item.caller_id, method: item.method, payload: item.body, outcome, durationMs });
      await markCompleted(db, item.id, outcome.status, fields.responseBody);
      await settleQueuedDelegation(run.scope, item, run.workspaceId, settlementOfAnswer(fields.responseBody));
      const summary = `${item.method || 'message'} → ${run.target.name} (delivered from queue)`;
      await recordDelivered(run, { ...recordable(fields, outcome), workspaceId: run.workspaceId, activityType: 'a2a_receive', summary, tokenUsage: tokenUsageOf(fields.responseBody) });
      return 'continue';
    }
    case 'busy':
      // A dropped connection is the agent refusing the request before any work: no attempt is
      // spent (the item did nothing wrong). A timeout is: the agent may have worked on it, and an
      // item that always outlasts the deadline must reach the cap rather than come back forever.
      if (outcome.reason === 'connection_reset') await releaseUncounted(db, item.id, FAILURE_TEXT.busy);
      else await failAttempt(run.scope, run.workspaceId, item, FAILURE_TEXT.busy);
      return 'busy';
    default:
      await failAttempt(run.scope, run.workspaceId, item, FAILURE_TEXT[outcome.kind]);
      return failsAgentWide(outcome) ? 'unavailable' : 'continue';
  }
}

/** 5xx and 429 describe the agent's state, 4xx and unreadable answers this one request. */
function failsAgentWide(outcome: Exclude<Delivery, { kind: 'ok' | 'busy' }>): boolean {
  if (outcome.kind === 'agent_error') return outcome.status >= 500 || outcome.status === 429;
  return outcome.kind === 'unreachable' || outcome.kind === 'restarting';
}

/** The item is delivered either way: a lost activity row is logged, never turned into a redelivery. */
async function recordDelivered(run: Run, record: ActivityRecord): Promise<void> {
  try {
    await recordActivities(run.scope, [record]);
  } catch (err) {
    console.error('queue delivery activity not recorded', run.workspaceId, err);
  }
}
