import { sql } from 'drizzle-orm';
import type { Bindings } from '../env';
import type { Db } from '../lib/request-scope';

export const DEFAULT_RETENTION_DAYS = 7;
/** Rows per DELETE: each statement is short, so no run holds a long lock or a long transaction. */
export const RETENTION_BATCH_ROWS = 5_000;
/** Statements per run: a backlog is worked off over several cron runs, never in one long one. */
export const RETENTION_MAX_BATCHES = 20;

let reported: string | undefined;

/** ACTIVITY_RETENTION_DAYS as a positive integer; anything else is logged (once per value) and 7 used. */
export function retentionDays(env: Pick<Bindings, 'ACTIVITY_RETENTION_DAYS'>): number {
  const raw = env.ACTIVITY_RETENTION_DAYS?.trim();
  if (!raw) return DEFAULT_RETENTION_DAYS;
  if (/^[1-9][0-9]{0,4}$/.test(raw)) return Number(raw);
  if (reported !== raw) {
    reported = raw;
    console.warn(`ACTIVITY_RETENTION_DAYS is not a positive integer; using ${DEFAULT_RETENTION_DAYS}`);
  }
  return DEFAULT_RETENTION_DAYS;
}

/**
 * Deletes activity rows older than the window, in batches. Rows leave a feed from its old end only
 * (a prefix by `created_at`, which follows `seq` within a feed under the feed lock), so a
 * `since_id` poller never sees a hole open behind its cursor; a cursor that is itself pruned is
 * 410 and the poller resyncs. Each feed's newest row of each activity type is kept whatever its
 * age: a caught-up poller's cursor (its last row, often of one type) survives a quiet week instead
 * of turning into a 410. No feed lock is needed: nothing here inserts, and only rows long
 * committed are touched.
 */
export async function pruneActivity(db: Db, opts: { days: number; batchRows?: number; maxBatches?: number; workspaceIds?: string[] }): Promise<number> {
  // Only these feeds (tests share one datastore with other suites running at the same time).
  const only = opts.workspaceIds ? sql`AND a.workspace_id IN ${opts.workspaceIds}` : sql``;
  const batchRows = opts.batchRows ?? RETENTION_BATCH_ROWS;
  const maxBatches = opts.maxBatches ?? RETENTION_MAX_BATCHES;
  let deleted = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const result = await db.execute(sql`
      DELETE FROM activity_logs
       WHERE ctid = ANY (ARRAY(
         SELECT a.ctid FROM activity_logs a
          WHERE a.created_at < now() - make_interval(days => ${opts.days}) ${only}
            AND EXISTS (SELECT 1 FROM activity_logs n
                         WHERE n.workspace_id = a.workspace_id AND n.activity_type = a.activity_type AND n.seq > a.seq)
          LIMIT ${batchRows}))`);
    const count = result.rowCount ?? 0;
    deleted += count;
    if (count < batchRows) break;
  }
  return deleted;
}
