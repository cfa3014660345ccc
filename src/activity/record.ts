import type { ActivityType } from '../db/schema';
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
  // Every row gets its id here unless the writer minted one: a retried flush then writes each row
  // once (ON CONFLICT), and usage and broadcasts are keyed by it. An entry sent twice (a shared
  // append retried by its callers) may sit twice in one batch: its rows count once.
  const seen = new Set<string>();
  const rows: (ActivityRecord & { id: string })[] = [];
  for (const r of records) {
    const id = r.id ?? crypto.randomUUID();
    if (seen.has(id)) continue;
    seen.add(id);
    rows.push(r.id ? (r as ActivityRecord & { id: string }) : { ...r, id });
  }
  const q = new Params();
  const feeds = [...new Set(rows.map((r) => r.workspaceId))];
  const lockFeeds = {
    text: `SELECT pg_advisory_xact_lock(k)
             FROM (SELECT DISTINCT hashtextextended('activity_feed:' || w, 0) AS k
                     FROM unnest($1::text[]) AS v(w)
                    ORDER BY 1) AS ordered`,
    params: [feeds],
  };
  const usage: UsageEntry[] = rows.flatMap((r) => (r.tokenUsage ? [{ activityId: r.id, workspaceId: r.workspaceId, ...r.tokenUsage }] : []));
  const write = { text: writeStatement(q, rows, { outboundFrom: opts.outboundFrom ?? [], usage }), params: q.values };
  const [, written] = await scope.batchStatements([lockFeeds, write]);
  const inserted = new Set(written!.map((r) => r.id as string));
  const recorded = rows.filter((r) => inserted.has(r.id)).map((a) => ({ a, id: a.id }));
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

/** Positional parameters of a hand-built statement. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** `last_outbound_at` is "when did this agent last talk", shown on the canvas: a minute is precise enough. */
const OUTBOUND_TOUCH_INTERVAL = `interval '60 seconds'`;

const COLUMNS = 'id, workspace_id, activity_type, source_id, target_id, method, summary, request_body, response_body, tool_trace, status, error_detail, duration_ms';

/** jsonb parameters go as JSON text (as drizzle's jsonb column does); absent is SQL NULL. */
const jsonParam = (value: unknown) => (value == null ? null : JSON.stringify(value));

/**
 * The insert, plus what rides in the same statement (one round trip, no extra lock): the callers'
 * `last_outbound_at`, only when stale (no row lock taken on every call: all calls from one busy
 * caller used to queue behind each other on its workspaces row), and the batch's token usage,
 * counted only for rows this statement inserted. Returns the inserted ids either way.
 *
 * Written by hand rather than with drizzle's builder, which cost a tenth of the Worker's CPU in
 * the bench; the VALUES rows are in the records' order, which is the order `seq` is taken in.
 */
function writeStatement(q: Params, rows: (ActivityRecord & { id: string })[], opts: { outboundFrom: string[]; usage: UsageEntry[] }): string {
  const values = rows
    .map(
      (a) =>
        `(${q.add(a.id)}, ${q.add(a.workspaceId)}, ${q.add(a.activityType)}, ${q.add(a.sourceId ?? null)}, ${q.add(a.targetId ?? null)}, ` +
        `${q.add(a.method ?? null)}, ${q.add(a.summary ?? null)}, ${q.add(jsonParam(a.requestBody))}, ${q.add(jsonParam(a.responseBody))}, ` +
        `${q.add(jsonParam(a.toolTrace))}, ${q.add(a.status ?? 'ok')}, ${q.add(a.errorDetail ?? null)}, ${q.add(a.durationMs ?? null)})`,
    )
    .join(', ');
  const insert = `INSERT INTO activity_logs (${COLUMNS}) VALUES ${values} ON CONFLICT (id) DO NOTHING RETURNING id`;
  const ctes: string[] = [];
  if (opts.outboundFrom.length > 0) {
    ctes.push(`touched AS (
      UPDATE workspaces SET last_outbound_at = now()
       WHERE id = ANY(${q.add(opts.outboundFrom)}::uuid[]) AND (last_outbound_at IS NULL OR last_outbound_at < now() - ${OUTBOUND_TOUCH_INTERVAL})
      RETURNING 1
    )`);
  }
  if (opts.usage.length === 0) return ctes.length > 0 ? `WITH ${ctes.join(', ')} ${insert}` : insert;
  ctes.push(`written AS (${insert})`, `counted AS (${usageUpsert(opts.usage, (v) => q.add(v), 'written')})`);
  return `WITH ${ctes.join(', ')} SELECT id FROM written`;
}
