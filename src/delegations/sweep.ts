import { and, eq, inArray, lt, or, sql } from 'drizzle-orm';
import { a2aQueue, delegations } from '../db/schema';
import type { Bindings } from '../env';
import type { RequestScope } from '../lib/request-scope';
import { announceSettled, DELEGATION_FAILURE, previewOf, scheduleDelegation } from './dispatch';
import { settleDelegation } from './queries';

/** Rows handled per pass: one cron run never holds long locks or makes unbounded subrequests. */
const BATCH = 100;
/** A `pending` delegation older than this lost its dispatcher before it was scheduled. */
const PENDING_GRACE = sql`interval '2 minutes'`;
/** Longer than any dispatcher alarm may run (15 min): a `dispatched` one this old died mid-call. */
const DISPATCH_GRACE = sql`interval '20 minutes'`;

/**
 * The cron's delegation pass, so nothing waits forever (nor keeps its idempotency key): pending
 * delegations whose scheduling was lost are handed to their dispatcher again (its claim makes a
 * second start harmless); dispatched ones older than any alarm are failed as interrupted; queued
 * ones whose queue item has finished take its outcome (the drain settles them as it goes; this
 * repairs a settle that failed). A poll agent's delegation stays `queued`: its answer arrives as a
 * new message and cannot be linked back.
 */
export async function sweepDelegations(env: Bindings, scope: RequestScope): Promise<void> {
  const db = scope.db;
  const lost = await db
    .select({ id: delegations.id })
    .from(delegations)
    .where(and(eq(delegations.status, 'pending'), lt(delegations.updatedAt, sql`now() - ${PENDING_GRACE}`)))
    .limit(BATCH);
  await Promise.allSettled(lost.map((d) => scheduleDelegation(env, d.id)));

  const interrupted = await db
    .select({ id: delegations.id })
    .from(delegations)
    .where(and(eq(delegations.status, 'dispatched'), lt(delegations.updatedAt, sql`now() - ${DISPATCH_GRACE}`)))
    .limit(BATCH);
  for (const d of interrupted) {
    const settled = await settleDelegation(db, d.id, { status: 'failed', error: DELEGATION_FAILURE.interrupted }, { from: ['dispatched'] });
    if (settled) announceSettled(scope, settled);
  }

  const finished = await db
    .select({ id: delegations.id, queueStatus: a2aQueue.status, responseBody: a2aQueue.responseBody })
    .from(delegations)
    .innerJoin(a2aQueue, eq(a2aQueue.id, delegations.queueId))
    .where(
      and(
        eq(delegations.status, 'queued'),
        or(inArray(a2aQueue.status, ['completed', 'failed', 'dropped', 'expired']), and(eq(a2aQueue.status, 'queued'), lt(a2aQueue.expiresAt, sql`now()`))),
      ),
    )
    .limit(BATCH);
  for (const d of finished) {
    const settlement =
      d.queueStatus === 'completed'
        ? { status: 'completed' as const, responsePreview: previewOf(d.responseBody) }
        : { status: 'failed' as const, error: DELEGATION_FAILURE.queueGaveUp };
    const settled = await settleDelegation(db, d.id, settlement, { from: ['queued'] });
    if (settled) announceSettled(scope, settled);
  }
}
