import { sql } from 'drizzle-orm';
import type { Db } from '../lib/request-scope';

export const EXPIRY_BATCH_ROWS = 5_000;
export const EXPIRY_MAX_BATCHES = 20;

/**
 * Queue items whose `expires_at` has passed become `expired` (the drain already skips them; this
 * makes it visible, frees their idempotency key and lets their delegations settle). Items being
 * claimed right now are skipped (SKIP LOCKED), and a claimed item is `dispatched`, never touched.
 */
export async function expireQueueItems(db: Db, opts: { batchRows?: number; maxBatches?: number; workspaceIds?: string[] } = {}): Promise<number> {
  // Only these workspaces' queues (tests share one datastore with other suites running at the same time).
  const only = opts.workspaceIds ? sql`AND workspace_id IN ${opts.workspaceIds}` : sql``;
  const batchRows = opts.batchRows ?? EXPIRY_BATCH_ROWS;
  const maxBatches = opts.maxBatches ?? EXPIRY_MAX_BATCHES;
  let expired = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const result = await db.execute(sql`
      UPDATE a2a_queue SET status = 'expired', last_error = 'expired before delivery', updated_at = now()
       WHERE id IN (SELECT id FROM a2a_queue
                     WHERE status = 'queued' AND expires_at <= now() ${only}
                     LIMIT ${batchRows}
                     FOR UPDATE SKIP LOCKED)
         AND status = 'queued'`);
    const count = result.rowCount ?? 0;
    expired += count;
    if (count < batchRows) break;
  }
  return expired;
}
