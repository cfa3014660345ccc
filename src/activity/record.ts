import { sql, type SQL } from 'drizzle-orm';
import { activityLogs, type ActivityType } from '../db/schema';
import { broadcastBatch, type EventMessage } from '../events/publish';
import type { RequestScope } from '../lib/request-scope';
import { usageUpsert, type TokenUsage, type UsageEntry } from '../usage/token-usage';

export type ActivityRecord = {
  /** Minted by the writer when a row must be written at most once (a retried write-behind flush). */
  id?: string;
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
  /** A canvas caller's answered exchange: also a broadcast-only A2A_RESPONSE, so its chat shows the answer at once. */
  announceResponse?: boolean;
  /** Tokens the answer reports, added to the workspace's daily usage in the same statement as the row. */
  tokenUsage?: TokenUsage;
};

/**
 * Inserts the rows in one statement, then broadcasts ACTIVITY_LOGGED with both bodies so a live
 * canvas renders the real task text rather than a placeholder. No row, no broadcast: the feed is
 * the source of truth.
 *
 * Rows reach a feed in `seq` order, and commit in that order too: a `since_id` poller steps past
 * every `seq` it has read, so a row that committed after a higher one would never be delivered.
 * `seq` is taken when a row is inserted, not when it commits, so writers to one feed queue on a
 * per-feed transaction lock taken before the insert (both statements in one transaction, one
 * HTTP round trip). Locks are taken in a fixed order, so two exchanges writing the same two feeds
 * cannot deadlock.
 */
export async function recordActivities(scope: RequestScope, records: ActivityRecord[], opts: { outboundFrom?: string[] } = {}): Promise<string[]> {
  const db = scope.db as unknown as FeedWriter;
  // Usage is keyed by its row's id: a batch carrying usage gets ids here if the writer minted none.
  if (records.some((r) => r.tokenUsage && !r.id)) records = records.map((r) => (r.id ? r : { ...r, id: crypto.randomUUID() }));
  const values = scope.db
    .insert(activityLogs)
    .values(
      records.map((a) => ({
        ...(a.id ? { id: a.id } : {}),
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
    );
  // Rows with their own ids are written at most once: a retry inserts only what is missing.
  const insert = (records.some((r) => r.id) ? values.onConflictDoNothing({ target: activityLogs.id }) : values).returning({ id: activityLogs.id });
  const feeds = [...new Set(records.map((r) => r.workspaceId))];
  const lockFeeds = db.execute(sql`
    SELECT pg_advisory_xact_lock(k)
      FROM (SELECT DISTINCT hashtextextended('activity_feed:' || w, 0) AS k
              FROM (VALUES ${sql.join(feeds.map((id) => sql`(${id}::text)`), sql`, `)}) AS v(w)
             ORDER BY 1) AS ordered`);
  const usage: UsageEntry[] = records.flatMap((r) => (r.tokenUsage ? [{ activityId: r.id!, workspaceId: r.workspaceId, ...r.tokenUsage }] : []));
  const write = db.execute(writeStatement(insert.getSQL(), { outboundFrom: opts.outboundFrom ?? [], usage }));
  const [, written] = await db.batch([lockFeeds, write]);
  const ids = (written as { rows: { id: string }[] }).rows.map((r) => r.id);
  // Which record each new id belongs to: its own id, else insertion order (no conflicts possible).
  const inserted = new Set(ids);
  const recorded = records.map((a, i) => ({ a, id: a.id ?? ids[i]! })).filter((r) => inserted.has(r.id));
  // One broadcast call per feed and one to the tenant hub, however many rows the batch has.
  const messages: EventMessage[] = [];
  for (const { a, id } of recorded) {
    messages.push({
        event: 'ACTIVITY_LOGGED',
        workspace_id: a.workspaceId,
        timestamp: new Date().toISOString(),
        payload: {
          id,
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
    });
    if (a.announceResponse && a.responseBody != null) {
      messages.push({
        event: 'A2A_RESPONSE',
        workspace_id: a.workspaceId,
        timestamp: new Date().toISOString(),
        payload: { response_body: a.responseBody, method: a.method ?? null, duration_ms: a.durationMs ?? null },
      });
    }
  }
  scope.defer('broadcast ACTIVITY_LOGGED', () => broadcastBatch(scope.env, messages));
  return recorded.map((r) => r.id);
}

/** What `recordActivities` needs of the HTTP driver: raw statements, and a batch run as one transaction. */
type FeedWriter = {
  execute(query: SQL): unknown;
  batch(queries: unknown[]): Promise<unknown[]>;
};

/** `last_outbound_at` is "when did this agent last talk", shown on the canvas: a minute is precise enough. */
const OUTBOUND_TOUCH_INTERVAL = sql`interval '60 seconds'`;

/**
 * The insert, plus what rides in the same statement (one round trip, no extra lock): the callers'
 * `last_outbound_at`, only when stale (no row lock taken on every call: all calls from one busy
 * caller used to queue behind each other on its workspaces row), and the batch's token usage,
 * counted only for rows this statement inserted. Returns the inserted ids either way.
 */
function writeStatement(insert: SQL, opts: { outboundFrom: string[]; usage: UsageEntry[] }): SQL {
  const ctes: SQL[] = [];
  if (opts.outboundFrom.length > 0) {
    ctes.push(sql`touched AS (
      UPDATE workspaces SET last_outbound_at = now()
       WHERE id IN ${opts.outboundFrom} AND (last_outbound_at IS NULL OR last_outbound_at < now() - ${OUTBOUND_TOUCH_INTERVAL})
      RETURNING 1
    )`);
  }
  if (opts.usage.length === 0) return ctes.length > 0 ? sql`WITH ${sql.join(ctes, sql`, `)} ${insert}` : insert;
  ctes.push(sql`written AS (${insert})`, sql`counted AS (${usageUpsert(opts.usage, sql.raw('written'))})`);
  return sql`WITH ${sql.join(ctes, sql`, `)} SELECT id FROM written`;
}
