import { DurableObject } from 'cloudflare:workers';
import type { Bindings } from '../env';
import { datastoreAnswers } from '../db/probe';
import { RequestScope } from '../lib/request-scope';
import {
  decode,
  inChunks,
  isManifest,
  partCount,
  partKeys,
  PENDING_PREFIX,
  rowsOf,
  SET_ASIDE_PREFIX,
  storedForm,
  STORAGE_MAX_KEYS,
  type PendingActivity,
  type Stored,
  type WireEntry,
} from './pending';
import { recordActivities } from './record';

/** How long rows wait for company before a flush: one INSERT and one broadcast per feed per batch. */
export const FLUSH_DELAY_MS = 25;
/** Entries per flush (each one exchange, ≤ 2 rows): bounded statement size and flush time. */
const FLUSH_MAX_ENTRIES = 200;
/**
 * …and characters of entries per flush (at least one entry, whatever its size). Neon's
 * SQL-over-HTTP refuses requests over 10 MiB, and a character of an entry can cost 6 bytes there
 * (2 rows, 3 bytes of UTF-8): a batch of several entries stays under 6 MiB, and one entry alone
 * is bounded by the recorded-body caps (RECORDED_ANSWER_MAX_BYTES, the 1 MiB request cap).
 */
const FLUSH_MAX_CHARS = 1024 * 1024;
/** Entries a fresh instance lists from storage at once: bounded memory (a value is ≤ 1 MiB). */
const STORED_LIST_LIMIT = 32;
/** Entries kept in memory as well as in storage; past this, the flush reads storage instead. */
const ACCEPTED_MAX_CHARS = 16 * 1024 * 1024;
/** A lone entry the datastore refuses this many times in a row, while it answers otherwise, is set aside. */
const REFUSALS_BEFORE_SET_ASIDE = 3;
/** A failed flush (datastore down) is retried this much later, never dropped. */
const RETRY_DELAY_MS = 5_000;
/** The backstop: if this object dies before its in-memory timer fires, the alarm flushes storage. */
const BACKSTOP_DELAY_MS = 2_000;

type Item = { key: string; entry: WireEntry | PendingActivity; parts: number };

/**
 * Write-behind for the activity rows of proxied exchanges, one per target workspace. An exchange
 * is accepted once its rows are in this object's durable storage (`append` resolves); from then
 * on nothing loses them: a flush writes accepted entries in one statement (under the feed locks,
 * so feeds still commit in seq order), deletes them only after the insert committed, and is
 * retried when the datastore fails. A flush that dies between the insert and the delete is
 * repeated and writes nothing twice (rows carry the ids minted here). A poll agent's inbox row is
 * not written here: it is the delivery itself, written before the sender's 200.
 *
 * Flushes run from an in-memory timer over the entries this instance accepted (no alarm event and
 * no storage read per batch: together they cost as much as the insert itself in the bench); the
 * alarm is only the backstop for an instance that died first, and it reads whatever storage holds.
 *
 * One entry the datastore will never take must not hold the feed behind it forever: a batch that
 * is refused while the datastore answers is retried one entry at a time, and a lone entry refused
 * three times is set aside under `refused:` (kept, logged, out of the queue).
 */
export class ActivityWriter extends DurableObject<Bindings> {
  /** Entries this instance accepted and has not flushed yet, in acceptance order (mirrors storage). */
  private readonly accepted = new Map<string, WireEntry>();
  private acceptedChars = 0;
  /** Set when `accepted` hit its bound: the flush reads storage until storage has caught up. */
  private spilled = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Whether this instance has seen an alarm set since the last one fired. */
  private backstopArmed = false;
  /** The flush under way: flushes never overlap, so a feed's rows are never inserted twice at once. */
  private running: Promise<number> | undefined;
  /** A batch was refused while the datastore answered: flush one entry at a time to find the cause. */
  private oneAtATime = false;
  private refusals = 0;

  /** Accepts several exchanges in one call; resolves once all are durable. */
  async append(entries: WireEntry[]): Promise<void> {
    // Time-ordered keys: storage lists them in acceptance order, and the flush keeps that order.
    const stamp = Date.now().toString().padStart(15, '0');
    const keyed = entries.map((entry, i) => [`${PENDING_PREFIX}${stamp}:${String(i).padStart(3, '0')}:${crypto.randomUUID()}`, entry] as const);
    // Usually one put for the whole call; an entry and its parts always share one (it is atomic).
    let put: Record<string, Stored> = {};
    let keys = 0;
    for (const [key, entry] of keyed) {
      const stored = storedForm(key, entry);
      const needed = Object.keys(stored).length;
      if (keys + needed > STORAGE_MAX_KEYS) {
        await this.ctx.storage.put(put);
        put = {};
        keys = 0;
      }
      Object.assign(put, stored);
      keys += needed;
    }
    if (keys > 0) await this.ctx.storage.put(put);
    for (const [key, entry] of keyed) {
      if (!this.spilled && this.acceptedChars + entry.length <= ACCEPTED_MAX_CHARS) {
        this.accepted.set(key, entry);
        this.acceptedChars += entry.length;
      } else this.spilled = true;
    }
    this.flushIn(FLUSH_DELAY_MS);
    // The backstop is checked once per armed alarm, not per append (a storage read each time).
    if (!this.backstopArmed) {
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + BACKSTOP_DELAY_MS);
      this.backstopArmed = true;
    }
  }

  override async alarm(): Promise<void> {
    this.backstopArmed = false; // this alarm is spent; the next append arms another
    while ((await this.flush()) > 0);
    // Anything accepted meanwhile still has its timer; this keeps a backstop under it.
    if (this.accepted.size > 0) await this.ctx.storage.setAlarm(Date.now() + BACKSTOP_DELAY_MS);
  }

  private flushIn(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush()
        .catch((err: unknown) => (console.error('activity flush failed', err), 0))
        .then((flushed) => {
          if (this.accepted.size > 0 || this.spilled) this.flushIn(flushed > 0 ? 0 : RETRY_DELAY_MS);
        });
    }, ms);
  }

  /** Writes up to one batch of accepted entries; returns how many left the queue. Never throws. */
  flush(): Promise<number> {
    // A failed run (storage itself failing) must not stop every later one.
    const run = (this.running ?? Promise.resolve(0)).catch(() => 0).then(() => this.flushOnce());
    this.running = run;
    return run;
  }

  private async flushOnce(): Promise<number> {
    const limit = this.oneAtATime ? 1 : FLUSH_MAX_ENTRIES;
    // This instance's own entries when it has them all; otherwise (a fresh instance: the backstop,
    // a crashed predecessor's entries; or more than memory holds) whatever storage holds.
    const fromMemory = this.accepted.size > 0 && !this.spilled;
    const batch = fromMemory ? this.memoryBatch(limit) : await this.storedBatch(limit);
    if (batch.length === 0) {
      this.spilled = false;
      this.oneAtATime = false;
      return 0;
    }
    const scope = new RequestScope(this.env);
    try {
      const entries = batch.map((item) => decode(item.entry));
      const outbound = [...new Set(entries.flatMap((e) => (e.outboundFrom ? [e.outboundFrom] : [])))];
      await recordActivities(scope, entries.flatMap(rowsOf), { outboundFrom: outbound });
      await this.forget(batch, batch.flatMap((item) => [item.key, ...partKeys(item.key, item.parts)]));
      this.refusals = 0;
      return batch.length;
    } catch (err) {
      console.error('activity flush failed; retrying', err);
      if (!(await datastoreAnswers(scope.db, 'activity flush'))) this.oneAtATime = false; // down: everything waits
      else if (batch.length > 1) this.oneAtATime = true; // something in it is refused: find it
      else if (++this.refusals >= REFUSALS_BEFORE_SET_ASIDE) return await this.setAside(batch[0]!);
      await this.ctx.storage.setAlarm(Date.now() + RETRY_DELAY_MS);
      return 0;
    } finally {
      await scope.close();
    }
  }

  /** The oldest accepted entries, up to the count and size bounds (but at least one). */
  private memoryBatch(limit: number): Item[] {
    const batch: Item[] = [];
    let chars = 0;
    for (const [key, entry] of this.accepted) {
      if (batch.length > 0 && (batch.length >= limit || chars + entry.length > FLUSH_MAX_CHARS)) break;
      batch.push({ key, entry, parts: partCount(entry) });
      chars += entry.length;
    }
    return batch;
  }

  /**
   * The oldest stored entries, chosen by size from the listing (a manifest knows its entry's
   * size) before any part is read: a backlog of large entries never has to fit in memory at once.
   */
  private async storedBatch(limit: number): Promise<Item[]> {
    const listed = await this.ctx.storage.list<Stored>({ prefix: PENDING_PREFIX, limit: Math.min(limit, STORED_LIST_LIMIT) });
    const batch: Item[] = [];
    let chars = 0;
    for (const [key, value] of listed) {
      const size = typeof value === 'string' ? value.length : isManifest(value) ? value.chars : 0;
      if (batch.length > 0 && chars + size > FLUSH_MAX_CHARS) break;
      chars += size;
      if (!isManifest(value)) {
        batch.push({ key, entry: value, parts: 1 });
        continue;
      }
      let text = '';
      for (const keys of inChunks(partKeys(key, value.parts))) {
        const parts = await this.ctx.storage.get<string>(keys);
        for (const k of keys) text += parts.get(k) ?? '';
      }
      batch.push({ key, entry: text, parts: value.parts });
    }
    return batch;
  }

  /** Removes flushed (or set-aside) entries from storage, then from memory. */
  private async forget(batch: Item[], keys: string[]): Promise<void> {
    for (const chunk of inChunks(keys)) await this.ctx.storage.delete(chunk);
    for (const { key } of batch) {
      const entry = this.accepted.get(key);
      if (entry === undefined) continue;
      this.accepted.delete(key);
      this.acceptedChars -= entry.length;
    }
  }

  /** Moves a refused entry out of the queue, kept under `refused:` (its parts keep their keys). */
  private async setAside(item: Item): Promise<number> {
    const stored = await this.ctx.storage.get<Stored>(item.key);
    const aside = `${SET_ASIDE_PREFIX}${item.key.slice(PENDING_PREFIX.length)}`;
    if (stored !== undefined) await this.ctx.storage.put(aside, stored);
    await this.forget([item], [item.key]);
    console.error(`activity entry set aside: the datastore refused it ${REFUSALS_BEFORE_SET_ASIDE} times (${aside})`);
    this.refusals = 0;
    this.oneAtATime = false;
    return 1;
  }
}
