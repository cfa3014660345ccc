import { activityLogs, type ActivityType } from '../db/schema';
import { broadcastEvent } from '../events/publish';
import type { RequestScope } from '../lib/request-scope';

export type ActivityRecord = {
  workspaceId: string;
  activityType: ActivityType;
  sourceId?: string | null;
  targetId?: string | null;
  method?: string | null;
  summary?: string | null;
  requestBody?: unknown;
  responseBody?: unknown;
  toolTrace?: unknown;
  status?: 'ok' | 'error';
  errorDetail?: string | null;
  durationMs?: number | null;
};

/**
 * Inserts the rows in one statement, then broadcasts ACTIVITY_LOGGED with both bodies so a live
 * canvas renders the real task text rather than a placeholder. No row, no broadcast: the feed is
 * the source of truth.
 */
export async function recordActivities(scope: RequestScope, records: ActivityRecord[]): Promise<string[]> {
  const rows = await scope.db
    .insert(activityLogs)
    .values(
      records.map((a) => ({
        workspaceId: a.workspaceId,
        activityType: a.activityType,
        sourceId: a.sourceId ?? null,
        targetId: a.targetId ?? null,
        method: a.method ?? null,
        summary: a.summary ?? null,
        requestBody: a.requestBody ?? null,
        responseBody: a.responseBody ?? null,
        toolTrace: a.toolTrace ?? null,
        status: a.status ?? 'ok',
        errorDetail: a.errorDetail ?? null,
        durationMs: a.durationMs ?? null,
      })),
    )
    .returning({ id: activityLogs.id });
  const ids = rows.map((r) => r.id);
  records.forEach((a, i) => {
    scope.defer('broadcast ACTIVITY_LOGGED', () =>
      broadcastEvent(scope.env, {
        event: 'ACTIVITY_LOGGED',
        workspace_id: a.workspaceId,
        timestamp: new Date().toISOString(),
        payload: {
          id: ids[i],
          activity_type: a.activityType,
          method: a.method ?? null,
          summary: a.summary ?? null,
          status: a.status ?? 'ok',
          source_id: a.sourceId ?? null,
          target_id: a.targetId ?? null,
          duration_ms: a.durationMs ?? null,
          ...(a.toolTrace != null ? { tool_trace: a.toolTrace } : {}),
          ...(a.requestBody != null ? { request_body: a.requestBody } : {}),
          ...(a.responseBody != null ? { response_body: a.responseBody } : {}),
        },
      }),
    );
  });
  return ids;
}
