import { recordActivities } from '../activity/record';
import type { Bindings } from '../env';
import { ApiError } from '../errors';
import { RequestScope } from '../lib/request-scope';
import { deliver, FAILURE_TEXT, resolveAgentUrl } from './deliver';
import { AGENT_CALLER_CEILING_MS, CANVAS_CALLER_CEILING_MS } from './dispatch';
import { parseJson } from './proxy';
import { loadProxyContext } from './proxy-context';
import { claimNext, markCompleted, markFailed } from './queue';

/**
 * Heartbeat reported spare capacity: hand the drain to the workspace's coordinator, whose alarm
 * can wait out a long agent call that a request's waitUntil could not.
 */
export function drainQueueInBackground(scope: RequestScope, workspaceId: string): void {
  scope.defer('request queue drain', () =>
    scope.env.WORKSPACE_COORDINATOR.get(scope.env.WORKSPACE_COORDINATOR.idFromName(workspaceId)).requestDrain(workspaceId),
  );
}

/** Delivers at most one queued item (one per heartbeat keeps a recovering agent from a stampede). */
export async function drainOne(env: Bindings, workspaceId: string): Promise<'empty' | 'completed' | 'failed'> {
  const scope = new RequestScope(env);
  try {
    const item = await claimNext(scope.db, workspaceId);
    if (!item) return 'empty';
    const { target } = await loadProxyContext(scope, { targetId: workspaceId, headerCaller: null, workspaceTokenHash: null, orgTokenHash: null });
    if (!target) {
      await markFailed(scope.db, item.id, 'workspace not found');
      return 'failed';
    }
    let url: string;
    try {
      url = resolveAgentUrl(scope, target);
    } catch (err) {
      await markFailed(scope.db, item.id, err instanceof ApiError ? err.message : 'unknown drain dispatch error');
      return 'failed';
    }
    const started = Date.now();
    const payload = JSON.stringify(item.body);
    const outcome = await deliver(scope, target, url, payload, item.caller_id ? AGENT_CALLER_CEILING_MS : CANVAS_CALLER_CEILING_MS);
    if (outcome.kind !== 'ok') {
      await markFailed(scope.db, item.id, FAILURE_TEXT[outcome.kind]);
      return 'failed';
    }
    const responseBody = parseJson(outcome.body);
    await markCompleted(scope.db, item.id, outcome.status, responseBody);
    await recordActivities(scope, [
      {
        workspaceId,
        activityType: 'a2a_receive',
        sourceId: item.caller_id,
        targetId: workspaceId,
        method: item.method,
        summary: `${item.method || 'message'} → ${target.name} (delivered from queue)`,
        requestBody: item.body,
        responseBody,
        durationMs: Date.now() - started,
      },
    ]);
    return 'completed';
  } finally {
    await scope.close();
  }
}
