import { DurableObject } from 'cloudflare:workers';
import type { Bindings } from '../env';
import { RequestScope } from '../lib/request-scope';
import { recordActivities, type ActivityRecord } from './record';

/** One exchange's rows, as accepted: ids minted on append so a retried flush writes each once. */
export type PendingActivity = { records: (ActivityRecord & { id: string })[]; outboundFrom?: string };

/** How long rows wait for company before a flush: one INSERT and one broadcast per feed per batch. */
export const FLUSH_DELAY_MS = 25;
/** Entries per flush (each one exchange, ≤ 2 rows): bounded statement size and flush time. */
const FLUSH_MAX_ENTRIES = 200;
/** A failed flush (datastore down) is retried by our own alarm, never dropped. */
const RETRY_DELAY_MS = 5_000;
const KEY_PREFIX = 'pending:';

/**
 * Write-behind for the activity rows of proxied exchanges, one per target workspace. An exchange
 * is accepted once its rows are in this object's durable storage (`append` resolves); from then
 * on nothing loses them: the alarm flushes accepted entries in one statement (under the feed
 * locks, so feeds still commit in seq order), deletes them only after the insert committed, and
 * re-arms itself when the datastore fails. A flush that dies between the insert and the delete is
 * repeated and writes nothing twice (rows carry the ids minted here). A poll agent's inbox row is
 * not written here: it is the delivery itself, written before the sender's 200.
 */
export class ActivityWriter extends DurableObject<Bindings> {
  async append(entry: PendingActivity): Promise<void> {
    // Time-ordered keys: storage lists them in acceptance order, and the flush keeps that order.
    await this.ctx.storage.put(`${KEY_PREFIX}${Date.now().toString().padStart(15, '0')}:${crypto.randomUUID()}`, entry);
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + FLUSH_DELAY_MS);
  }

  override async alarm(): Promise<void> {
    await this.flush();
  }

  /** Writes up to one batch of accepted entries; returns how many were flushed. Never throws. */
  async flush(): Promise<number> {
    const pending = await this.ctx.storage.list<PendingActivity>({ prefix: KEY_PREFIX, limit: FLUSH_MAX_ENTRIES });
    if (pending.size === 0) return 0;
    const entries = [...pending.values()];
    const scope = new RequestScope(this.env);
    try {
      const outbound = [...new Set(entries.flatMap((e) => (e.outboundFrom ? [e.outboundFrom] : [])))];
      await recordActivities(scope, entries.flatMap((e) => e.records), { outboundFrom: outbound });
      await this.ctx.storage.delete([...pending.keys()]);
    } catch (err) {
      console.error('activity flush failed; retrying', err);
      await this.ctx.storage.setAlarm(Date.now() + RETRY_DELAY_MS);
      return 0;
    } finally {
      await scope.close();
    }
    if ((await this.ctx.storage.list({ prefix: KEY_PREFIX, limit: 1 })).size > 0) await this.ctx.storage.setAlarm(Date.now());
    return pending.size;
  }
}

/** Hands an exchange's rows to the target's writer; once this resolves they are durable. */
export async function appendActivity(env: Bindings, targetId: string, entry: PendingActivity): Promise<void> {
  await env.ACTIVITY_WRITER.getByName(targetId).append(entry);
}
