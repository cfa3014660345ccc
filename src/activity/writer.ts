import { DurableObject } from 'cloudflare:workers';
import type { Bindings } from '../env';
import { RequestScope } from '../lib/request-scope';
import { recordActivities, type ActivityRecord } from './record';

/** One exchange's rows, as accepted: ids minted on append so a retried flush writes each once. */
export type PendingActivity = { records: (ActivityRecord & { id: string })[]; outboundFrom?: string };
/**
 * A PendingActivity as it travels to the writer and sits in its storage: JSON text, made once by
 * the Worker. Structured-cloning the objects instead (for the call, and again for storage) was
 * the largest part of the write-behind's CPU in the bench. Storage written by an older version
 * holds the objects themselves; the flush reads both.
 */
export type WireEntry = string;
const decode = (stored: WireEntry | PendingActivity): PendingActivity => (typeof stored === 'string' ? (JSON.parse(stored) as PendingActivity) : stored);

/** How long rows wait for company before a flush: one INSERT and one broadcast per feed per batch. */
export const FLUSH_DELAY_MS = 25;
/** Entries per flush (each one exchange, ≤ 2 rows): bounded statement size and flush time. */
const FLUSH_MAX_ENTRIES = 200;
/** A failed flush (datastore down) is retried this much later, never dropped. */
const RETRY_DELAY_MS = 5_000;
/** The backstop: if this object dies before its in-memory timer fires, the alarm flushes storage. */
const BACKSTOP_DELAY_MS = 2_000;
const KEY_PREFIX = 'pending:';

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

  /** Accepts several exchanges in one call (one storage write); resolves once all are durable. */
  async append(entries: WireEntry[]): Promise<void> {
    // Time-ordered keys: storage lists them in acceptance order, and the flush keeps that order.
    const stamp = Date.now().toString().padStart(15, '0');
    const batch: Record<string, WireEntry> = {};
    entries.forEach((entry, i) => (batch[`${KEY_PREFIX}${stamp}:${String(i).padStart(3, '0')}:${crypto.randomUUID()}`] = entry));
    await this.ctx.storage.put(batch);
    for (const [key, entry] of Object.entries(batch)) this.accepted.set(key, entry);
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
    const pending =
      this.accepted.size > 0
        ? new Map([...this.accepted].slice(0, FLUSH_MAX_ENTRIES))
        : await this.ctx.storage.list<WireEntry | PendingActivity>({ prefix: KEY_PREFIX, limit: FLUSH_MAX_ENTRIES });
    if (pending.size === 0) return 0;
    const entries = [...pending.values()].map(decode);
    const scope = new RequestScope(this.env);
    try {
      const outbound = [...new Set(entries.flatMap((e) => (e.outboundFrom ? [e.outboundFrom] : [])))];
      await recordActivities(scope, entries.flatMap((e) => e.records), { outboundFrom: outbound });
      await this.ctx.storage.delete([...pending.keys()]);
      for (const key of pending.keys()) this.accepted.delete(key);
    } catch (err) {
      console.error('activity flush failed; retrying', err);
      await this.ctx.storage.setAlarm(Date.now() + RETRY_DELAY_MS);
      return 0;
    } finally {
      await scope.close();
    }
    return pending.size;
  }
}

/** Entries per `append` call: storage.put takes at most 128 keys at once. */
const APPEND_MAX_ENTRIES = 128;
/** How long the first exchange of a batch waits for others before the shared call goes out. */
const APPEND_WINDOW_MS = 4;
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
      timer = setTimeout(() => settle(false), ackTimeoutMs);
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
    const batch = box.waiting.splice(0, APPEND_MAX_ENTRIES);
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
