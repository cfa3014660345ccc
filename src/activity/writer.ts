import { DurableObject } from 'cloudflare:workers';
import type { Bindings } from '../env';
import { RequestScope } from '../lib/request-scope';
import { recordActivities, type ActivityRecord } from './record';

type PendingRow = Pick<ActivityRecord, 'workspaceId' | 'activityType'> & Partial<ActivityRecord> & { id: string };
/**
 * One exchange's rows, as accepted: ids minted on append so a retried flush writes each once.
 * What the rows have in common (both bodies of the exchange, above all) travels once, in `shared`.
 */
export type PendingActivity = { records: PendingRow[]; shared?: Omit<ActivityRecord, 'workspaceId' | 'activityType' | 'id'>; outboundFrom?: string };
/**
 * A PendingActivity as it travels to the writer and sits in its storage: JSON text, made once by
 * the Worker. Structured-cloning the objects instead (for the call, and again for storage) was
 * the largest part of the write-behind's CPU in the bench. Storage written by an older version
 * holds the objects themselves; the flush reads both.
 */
export type WireEntry = string;
/** An entry too large for one storage value, stored in parts under `part:<its key>:<n>`. */
type Manifest = { parts: number };
type Stored = WireEntry | PendingActivity | Manifest;

const decode = (entry: WireEntry | PendingActivity): PendingActivity => (typeof entry === 'string' ? (JSON.parse(entry) as PendingActivity) : entry);
const rowsOf = (entry: PendingActivity): ActivityRecord[] => (entry.shared ? entry.records.map((r) => ({ ...entry.shared, ...r })) : entry.records);

/** How long rows wait for company before a flush: one INSERT and one broadcast per feed per batch. */
export const FLUSH_DELAY_MS = 25;
/** Entries per flush (each one exchange, ≤ 2 rows): bounded statement size and flush time. */
const FLUSH_MAX_ENTRIES = 200;
/** …and characters of entries per flush (at least one entry, whatever its size): bounded statement size. */
const FLUSH_MAX_CHARS = 4 * 1024 * 1024;
/**
 * Characters per storage value. A SQLite-backed object refuses values over 2 MB (SQLITE_TOOBIG),
 * and an exchange with a 10 MiB answer is far larger: its entry is stored in parts of at most
 * 1 MiB (a string is stored as UTF-16 at worst), all written by the same `put` as its manifest.
 */
export const PART_CHARS = 512 * 1024;
/** storage.put and storage.get take at most 128 keys at once. */
const STORAGE_MAX_KEYS = 128;
/** A failed flush (datastore down) is retried this much later, never dropped. */
const RETRY_DELAY_MS = 5_000;
/** The backstop: if this object dies before its in-memory timer fires, the alarm flushes storage. */
const BACKSTOP_DELAY_MS = 2_000;
const KEY_PREFIX = 'pending:';
const partKey = (key: string, n: number) => `part:${key}:${String(n).padStart(3, '0')}`;
const partsOf = (entry: WireEntry) => Math.ceil(entry.length / PART_CHARS);

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
 */
export class ActivityWriter extends DurableObject<Bindings> {
  /** Entries this instance accepted and has not flushed yet, in acceptance order (mirrors storage). */
  private readonly accepted = new Map<string, WireEntry>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Whether this instance has seen an alarm set since the last one fired. */
  private backstopArmed = false;
  /** The flush under way: flushes never overlap, so a feed's rows are never inserted twice at once. */
  private running: Promise<number> | undefined;

  /** Accepts several exchanges in one call; resolves once all are durable. */
  async append(entries: WireEntry[]): Promise<void> {
    // Time-ordered keys: storage lists them in acceptance order, and the flush keeps that order.
    const stamp = Date.now().toString().padStart(15, '0');
    const keyed = entries.map((entry, i) => [`${KEY_PREFIX}${stamp}:${String(i).padStart(3, '0')}:${crypto.randomUUID()}`, entry] as const);
    // Usually one put for the whole call; an entry and its parts always share one (it is atomic).
    let put: Record<string, Stored> = {};
    let keys = 0;
    for (const [key, entry] of keyed) {
      const parts = partsOf(entry);
      const needed = parts > 1 ? parts + 1 : 1;
      if (keys + needed > STORAGE_MAX_KEYS) {
        await this.ctx.storage.put(put);
        put = {};
        keys = 0;
      }
      if (parts > 1) {
        put[key] = { parts } satisfies Manifest;
        for (let n = 0; n < parts; n++) put[partKey(key, n)] = entry.slice(n * PART_CHARS, (n + 1) * PART_CHARS);
      } else put[key] = entry;
      keys += needed;
    }
    if (keys > 0) await this.ctx.storage.put(put);
    for (const [key, entry] of keyed) this.accepted.set(key, entry);
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
          if (this.accepted.size > 0) this.flushIn(flushed > 0 ? 0 : RETRY_DELAY_MS);
        });
    }, ms);
  }

  /** Writes up to one batch of accepted entries; returns how many were flushed. Never throws. */
  flush(): Promise<number> {
    // A failed run (storage itself failing) must not stop every later one.
    const run = (this.running ?? Promise.resolve(0)).catch(() => 0).then(() => this.flushOnce());
    this.running = run;
    return run;
  }

  private async flushOnce(): Promise<number> {
    // This instance's own entries when it has any; otherwise (a fresh instance: the backstop, a
    // crashed predecessor's entries) whatever storage holds.
    const pending = this.accepted.size > 0 ? this.accepted : await this.storedEntries();
    const batch = takeBatch(pending);
    if (batch.length === 0) return 0;
    const entries = batch.map(([, entry]) => decode(entry));
    const scope = new RequestScope(this.env);
    try {
      const outbound = [...new Set(entries.flatMap((e) => (e.outboundFrom ? [e.outboundFrom] : [])))];
      await recordActivities(scope, entries.flatMap(rowsOf), { outboundFrom: outbound });
      const keys = batch.flatMap(([key, entry]) => {
        const parts = typeof entry === 'string' ? partsOf(entry) : 1;
        return [key, ...(parts > 1 ? Array.from({ length: parts }, (_, n) => partKey(key, n)) : [])];
      });
      for (let i = 0; i < keys.length; i += STORAGE_MAX_KEYS) await this.ctx.storage.delete(keys.slice(i, i + STORAGE_MAX_KEYS));
      for (const [key] of batch) this.accepted.delete(key);
    } catch (err) {
      console.error('activity flush failed; retrying', err);
      await this.ctx.storage.setAlarm(Date.now() + RETRY_DELAY_MS);
      return 0;
    } finally {
      await scope.close();
    }
    return batch.length;
  }

  /** Stored entries in acceptance order, an entry stored in parts put back together. */
  private async storedEntries(): Promise<Map<string, WireEntry | PendingActivity>> {
    const stored = await this.ctx.storage.list<Stored>({ prefix: KEY_PREFIX, limit: FLUSH_MAX_ENTRIES });
    const entries = new Map<string, WireEntry | PendingActivity>();
    for (const [key, value] of stored) {
      if (typeof value === 'string' || !('parts' in value)) {
        entries.set(key, value);
        continue;
      }
      const keys = Array.from({ length: value.parts }, (_, n) => partKey(key, n));
      let text = '';
      for (let i = 0; i < keys.length; i += STORAGE_MAX_KEYS) {
        const parts = await this.ctx.storage.get<string>(keys.slice(i, i + STORAGE_MAX_KEYS));
        for (const k of keys.slice(i, i + STORAGE_MAX_KEYS)) text += parts.get(k) ?? '';
      }
      entries.set(key, text);
    }
    return entries;
  }
}

/** The oldest entries, up to the count and size bounds (but at least one). */
function takeBatch<T extends WireEntry | PendingActivity>(pending: Map<string, T>): [string, T][] {
  const batch: [string, T][] = [];
  let chars = 0;
  for (const item of pending) {
    const size = typeof item[1] === 'string' ? item[1].length : 0;
    if (batch.length > 0 && (batch.length >= FLUSH_MAX_ENTRIES || chars + size > FLUSH_MAX_CHARS)) break;
    batch.push(item);
    chars += size;
  }
  return batch;
}

/** Entries per `append` call, and their characters (a call carries at most 32 MiB; a string may take two bytes a character). */
const APPEND_MAX_ENTRIES = 128;
const APPEND_MAX_CHARS = 8 * 1024 * 1024;
/** How long the first exchange of a batch waits for others before the shared call goes out. */
const APPEND_WINDOW_MS = 10;
/** How long a request waits for another request's send to carry its entry before sending it itself. */
const CARRIED_ACK_TIMEOUT_MS = 10_000;

type Waiting = { entry: WireEntry; settle: (carried: boolean) => void };
/** Per isolate and target: entries waiting for the send in flight, and whether one is. */
type Outbox = { waiting: Waiting[]; sending: boolean; since: number };
const outboxes = new Map<string, Outbox>();

/**
 * Hands an exchange's rows to the target's writer; once this resolves they are durable.
 *
 * One call to the writer per exchange cost the Worker as much CPU as the rest of the proxy (the
 * bench: 0.26× direct with it, 0.45× without), so exchanges of one isolate share calls: the
 * first caller waits a few milliseconds and sends what gathered; entries that arrive while its
 * call is in flight wait for it, and it then sends them together. Nothing depends on the sender's request living on: every caller waits for
 * its own entry to be confirmed and, if the carrying call failed or never answered, sends it
 * itself. A duplicate send is harmless (row ids are minted before, the flush writes each once).
 */
export async function appendActivity(env: Bindings, targetId: string, pending: PendingActivity, opts: { ackTimeoutMs?: number } = {}): Promise<void> {
  const ackTimeoutMs = opts.ackTimeoutMs ?? CARRIED_ACK_TIMEOUT_MS; // tests shorten it
  const entry: WireEntry = JSON.stringify(pending);
  let box = outboxes.get(targetId);
  // A sender whose request was cut off mid-send never clears its flag: after the wait its callers
  // give up on, the next caller starts a fresh outbox (the old one's waiters send their own).
  if (!box || (box.sending && Date.now() - box.since > ackTimeoutMs)) {
    box = { waiting: [], sending: false, since: 0 };
    outboxes.set(targetId, box);
  }
  if (box.sending) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const carried = await new Promise<boolean>((settle) => {
      timer = setTimeout(() => {
        // Given up on: later callers start a fresh outbox rather than wait on this one too.
        if (outboxes.get(targetId) === box) outboxes.delete(targetId);
        settle(false);
      }, ackTimeoutMs);
      box.waiting.push({ entry, settle });
    });
    clearTimeout(timer);
    if (carried) return;
    await env.ACTIVITY_WRITER.getByName(targetId).append([entry]);
    return;
  }
  box.sending = true;
  box.since = Date.now();
  // The first caller waits a moment for company: exchanges answered within the window share one
  // call (one RPC, one storage write), where sending at once carried barely one entry per call
  // under load (the call returns before the next exchange ends). Nobody waits on this but the
  // write-behind: the caller's response has already gone.
  let mine = false;
  box.waiting.push({ entry, settle: (carried) => (mine = carried) });
  try {
    await new Promise((resolve) => setTimeout(resolve, APPEND_WINDOW_MS));
  } finally {
    await sendWaiting(env, targetId, box);
  }
  if (!mine) await env.ACTIVITY_WRITER.getByName(targetId).append([entry]);
}

/** The sender's loop: everything that queued behind its call, in batches, until none is left. */
async function sendWaiting(env: Bindings, targetId: string, box: Outbox): Promise<void> {
  const writer = env.ACTIVITY_WRITER.getByName(targetId);
  while (box.waiting.length > 0) {
    let count = 0;
    for (let chars = 0; count < box.waiting.length && count < APPEND_MAX_ENTRIES; count++) {
      chars += box.waiting[count]!.entry.length;
      if (count > 0 && chars > APPEND_MAX_CHARS) break;
    }
    const batch = box.waiting.splice(0, count);
    box.since = Date.now();
    try {
      await writer.append(batch.map((w) => w.entry));
      for (const w of batch) w.settle(true);
    } catch (err) {
      console.error('activity append failed; its callers send their own', err);
      for (const w of batch) w.settle(false);
    }
  }
  box.sending = false;
  if (outboxes.get(targetId) === box) outboxes.delete(targetId);
}
