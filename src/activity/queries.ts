import { sql, type SQL } from 'drizzle-orm';
import type { ActivityType } from '../db/schema';
import type { Db } from '../lib/request-scope';
import { readStoredJson } from '../lib/json-text';

export type FeedQuery = {
  workspaceId: string;
  type?: ActivityType;
  source?: 'canvas' | 'agent';
  /** Rows exchanged with this workspace (either direction). */
  peerId?: string;
  beforeTs?: Date;
  sinceSecs?: number;
  sinceId?: string;
  limit: number;
  /** Without a cursor: the newest `limit` rows, newest first (`desc`) or in recorded order (`asc`). */
  order: 'asc' | 'desc';
  /** The workspace's own `/notify` messages to its canvas user, which are not input for its agent. */
  hideNotifyEchoes: boolean;
};

export type FeedRow = {
  id: string;
  workspace_id: string;
  activity_type: ActivityType;
  source_id: string | null;
  target_id: string | null;
  method: string | null;
  summary: string | null;
  request_body: unknown;
  response_body: unknown;
  tool_trace: unknown;
  status: 'ok' | 'error';
  error_detail: string | null;
  duration_ms: number | null;
  created_at: string;
  /** Name and role of `source_id`'s workspace, for the SDK's `data` projection. */
  peer_name: string | null;
  peer_role: string | null;
};

/**
 * One page of a workspace's feed in ONE statement, cursor lookup included. With `sinceId`: the
 * rows recorded after it (by `seq`, so rows sharing a timestamp are never skipped), oldest first;
 * `cursor_found` false means the cursor is not in this feed (pruned, unknown, another's) → 410.
 * Without: the newest `limit` rows, in the order asked.
 */
export async function readFeed(db: Db, q: FeedQuery): Promise<{ cursorFound: false } | { cursorFound: true; rows: FeedRow[] }> {
  const filters: SQL[] = [sql`a.workspace_id = ${q.workspaceId}`];
  if (q.type) filters.push(sql`a.activity_type = ${q.type}`);
  if (q.source === 'canvas') filters.push(sql`a.source_id IS NULL`);
  if (q.source === 'agent') filters.push(sql`a.source_id IS NOT NULL`);
  if (q.peerId) filters.push(sql`(a.source_id = ${q.peerId} OR a.target_id = ${q.peerId})`);
  if (q.beforeTs) filters.push(sql`a.created_at < ${q.beforeTs.toISOString()}::timestamptz`);
  if (q.sinceSecs !== undefined && q.sinceSecs > 0) filters.push(sql`a.created_at >= now() - make_interval(secs => ${q.sinceSecs})`);
  if (q.hideNotifyEchoes) filters.push(sql`NOT (a.method IS NOT DISTINCT FROM 'notify' AND a.source_id IS NULL)`);
  if (q.sinceId) filters.push(sql`a.seq > (SELECT seq FROM cursor)`);
  const newestFirst = !q.sinceId;

  const result = await db.execute<FeedRow & { cursor_found: boolean; seq: number | null }>(sql`
    WITH cursor AS (
      SELECT seq FROM activity_logs WHERE id = ${q.sinceId ?? null}::uuid AND workspace_id = ${q.workspaceId}
    ),
    page AS (
      SELECT a.id, a.seq, a.workspace_id, a.activity_type, a.source_id, a.target_id, a.method, a.summary,
             a.request_body::text AS request_body, a.response_body::text AS response_body, a.tool_trace::text AS tool_trace,
             a.status, a.error_detail, a.duration_ms, a.created_at, w.name AS peer_name, w.role AS peer_role
        FROM activity_logs a LEFT JOIN workspaces w ON w.id = a.source_id
       WHERE ${sql.join(filters, sql` AND `)}
       ORDER BY a.seq ${newestFirst ? sql`DESC` : sql`ASC`}
       LIMIT ${q.limit}
    )
    SELECT EXISTS (SELECT 1 FROM cursor) AS cursor_found, p.*
      FROM (SELECT 1) AS one LEFT JOIN page p ON true
     ORDER BY p.seq ${newestFirst ? sql`DESC` : sql`ASC`}`);

  const first = result.rows[0];
  if (q.sinceId && !first?.cursor_found) return { cursorFound: false };
  const rows = result.rows
    .filter((r) => r.id !== null)
    .map(({ cursor_found: _found, seq: _seq, ...r }) => ({
      ...r,
      request_body: readStoredJson(r.request_body),
      response_body: readStoredJson(r.response_body),
      tool_trace: readStoredJson(r.tool_trace),
      created_at: new Date(r.created_at).toISOString(),
    }));
  // A cold-start poller takes the LAST row as its cursor: the newest rows, in recorded order.
  if (newestFirst && q.order === 'asc') rows.reverse();
  return { cursorFound: true, rows };
}
